import type { Logger } from "pino";
import type { TaskStore } from "./types.js";

/** Options of {@link startOutputRetention}. */
export interface OutputRetentionOptions {
  /** The store to prune. */
  store: TaskStore;
  /** Output of finished tasks older than this is removed, ms. */
  maxAgeMs: number;
  /** Stored task output is kept at or below this many bytes (oldest finished tasks go first). */
  maxTotalBytes: number;
  /** Time between passes, ms. */
  intervalMs: number;
  /** Logger (pino). */
  logger: Logger;
  /** Called after each pass with the stored output size (metrics). */
  onPass?: (totalBytes: number) => void;
}

/**
 * Prunes task output in the background: one pass at start, then every `intervalMs`, never two
 * at once. Task records and the audit chain are kept (audit records are never pruned, only
 * exported). Returns a function that stops it and waits for a running pass.
 *
 * @example
 * const stop = startOutputRetention({ store, maxAgeMs: 7 * 86_400_000,
 *   maxTotalBytes: 1 << 30, intervalMs: 60_000, logger });
 * await stop();
 */
export function startOutputRetention(options: OutputRetentionOptions): () => Promise<void> {
  const { store, logger } = options;
  let running: Promise<void> | undefined;
  let stopped = false;
  const pass = () => {
    if (running || stopped) return;
    running = store
      .pruneOutput({
        createdBefore: Date.now() - options.maxAgeMs,
        maxTotalBytes: options.maxTotalBytes,
      })
      .then(
        (r) => {
          options.onPass?.(r.totalBytes);
          if (r.tasks > 0) {
            logger.info(
              { tasks: r.tasks, bytes: r.bytes, totalBytes: r.totalBytes },
              "task output pruned (retention)",
            );
          }
        },
        (err: unknown) => logger.warn({ err: String(err) }, "task output retention pass failed"),
      )
      .finally(() => {
        running = undefined;
      });
  };
  pass();
  const timer = setInterval(pass, options.intervalMs);
  timer.unref();
  return async () => {
    stopped = true;
    clearInterval(timer);
    await running;
  };
}
