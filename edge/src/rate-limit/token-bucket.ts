/** Options of {@link createRateLimiter}. */
export interface RateLimiterOptions {
  /** Tokens added to each bucket per second (sustained rate). */
  ratePerSecond: number;
  /** Bucket capacity: the largest burst a key may spend at once; a new key starts full. */
  burst: number;
  /**
   * Most keys tracked at once (default 10000), so memory stays bounded. Keys
   * not used for a while are forgotten first (approximate LRU, in two
   * generations of `maxKeys / 2`); a forgotten key starts again with a full
   * bucket.
   */
  maxKeys?: number;
  /** Clock in milliseconds (default `performance.now`, monotonic); injectable for tests. */
  now?: () => number;
}

/** Per-key token buckets. */
export interface RateLimiter {
  /**
   * Takes `cost` tokens (default 1) from `key`'s bucket.
   * Returns 0 if allowed, else the milliseconds to wait before retrying
   * (always ≥ 1; nothing is taken from the bucket when refused).
   *
   * @throws {RangeError} when `cost` is not positive or exceeds the burst.
   */
  take(key: string, cost?: number): number;
}

interface Bucket {
  tokens: number;
  updatedAt: number;
}

/**
 * Creates a token-bucket rate limiter keyed by principal (or anything else).
 * Buckets refill continuously at `ratePerSecond` up to `burst`. At most
 * `maxKeys` buckets are held (approximate LRU).
 *
 * @example
 * const limiter = createRateLimiter({ ratePerSecond: 50, burst: 100 });
 * const waitMs = limiter.take(principal.sub);
 * if (waitMs > 0) throw new ConnectError("rate limit exceeded", Code.ResourceExhausted);
 */
export function createRateLimiter(options: RateLimiterOptions): RateLimiter {
  const { ratePerSecond, burst } = options;
  const maxKeys = options.maxKeys ?? 10_000;
  const now = options.now ?? (() => performance.now());
  if (!(Number.isFinite(ratePerSecond) && ratePerSecond > 0)) {
    throw new RangeError(`ratePerSecond must be a positive number, got ${ratePerSecond}`);
  }
  if (!(Number.isFinite(burst) && burst >= 1))
    throw new RangeError(`burst must be >= 1, got ${burst}`);
  if (!(Number.isInteger(maxKeys) && maxKeys >= 2))
    throw new RangeError(`maxKeys must be an integer >= 2, got ${maxKeys}`);
  const perMs = ratePerSecond / 1000;
  // Two generations instead of a strict LRU list: lookups promote from `old`
  // to `recent`; when `recent` holds half the budget, `old` is dropped whole.
  // O(1) per call with no per-access Map delete (which leaves holes V8 must
  // skip), and at most `maxKeys` buckets held. Keys unused for a full
  // generation are forgotten first.
  const generation = Math.max(1, Math.floor(maxKeys / 2));
  let recent = new Map<string, Bucket>();
  let old = new Map<string, Bucket>();

  function lookup(key: string): Bucket | undefined {
    const hit = recent.get(key);
    if (hit !== undefined) return hit;
    const aged = old.get(key);
    if (aged !== undefined) {
      old.delete(key);
      store(key, aged);
    }
    return aged;
  }

  function store(key: string, bucket: Bucket): void {
    if (recent.size >= generation) {
      old = recent;
      recent = new Map();
    }
    recent.set(key, bucket);
  }

  return {
    take(key, cost = 1) {
      if (!(cost > 0 && cost <= burst)) {
        throw new RangeError(`cost must be > 0 and <= burst (${burst}), got ${cost}`);
      }
      const t = now();
      let bucket = lookup(key);
      if (bucket === undefined) {
        bucket = { tokens: burst, updatedAt: t };
        store(key, bucket);
      } else {
        const elapsed = Math.max(0, t - bucket.updatedAt);
        bucket.tokens = Math.min(burst, bucket.tokens + elapsed * perMs);
        bucket.updatedAt = t;
      }
      if (bucket.tokens >= cost) {
        bucket.tokens -= cost;
        return 0;
      }
      // The small epsilon keeps floating-point noise from adding a whole millisecond.
      return Math.max(1, Math.ceil((cost - bucket.tokens) / perMs - 1e-6));
    },
  };
}
