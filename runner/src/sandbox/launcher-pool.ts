/**
 * Prepared launchers (issue 13, "prepared sandboxes"): a small pool of sandbox launchers
 * started before any task is known — the launcher process spawned, its child forked and
 * already placed into a fresh, empty cgroup, its seccomp programs open on fds 3 and 4 — each
 * waiting for exactly one task's limits and command line. A task takes one; it is never
 * returned or reused, and a replacement is prepared once that task has started (placing a
 * process into a cgroup takes the kernel's cgroup attach lock, which the task's own bwrap
 * needs to fork). This takes the runner's fork
 * of itself (a few ms of blocked event loop), the cgroup's creation and the first cgroup
 * attach of the process (a kernel RCU grace period: ~8 ms here) off the path of every task.
 *
 * The pool adapts and is bounded: it starts at one member, grows by one (up to `max`) each
 * time a task found none ready, and shrinks by one (down to one) after `idleMs` without such a
 * miss. `max` 0 turns it off.
 *
 * @example
 * const pool = createLauncherPool({ max: 4, idleMs: 60_000, start, compatible });
 * const member = pool.take(prepared); // undefined: start a launcher the ordinary way
 */
import type { Logger } from "pino";
import type { TaskCgroup } from "./cgroup.js";

/** What the pool needs of a launcher's process (a spawner's child, or a ChildProcess). */
export interface PoolChild {
  readonly pid?: number | undefined;
  readonly exitCode: number | null;
  readonly signalCode: NodeJS.Signals | null;
  once(event: "close", listener: () => void): unknown;
}

/** One prepared launcher, owned by the pool until taken. */
export interface PreparedLauncher<P = unknown, C extends PoolChild = PoolChild> {
  /** The sandbox preparation it was started with (helper, seccomp programs, cgroups). */
  readonly p: P;
  readonly child: C;
  /** Its cgroup (no limits until the task's are written), or null without cgroups. */
  readonly cg: TaskCgroup | null;
  /** The Landlock policy (landlockPrebuildArgs, NUL-joined) its child prebuilt rules for. */
  readonly prebuilt?: string;
  /** Resolves true once its child is in the cgroup; false when it failed or exited. */
  readonly placed: Promise<boolean>;
  /** True once placed: only such a member is handed out. */
  ready?: boolean;
  /** Status text read past the last line the pool consumed. */
  leftover(): string;
  /** Removes the pool's listeners: the taker owns the process from here on. */
  detach(): void;
  /** Stops it without running anything (its close then removes its cgroup). */
  dispose(): void;
}

export interface LauncherPoolOptions<P, C extends PoolChild = PoolChild> {
  /** Most members held at once; 0 turns the pool off. */
  max: number;
  /** A member count above one shrinks by one after this long without a miss. */
  idleMs: number;
  /** Starts one member (null: could not, try later). */
  start(p: P): Promise<PreparedLauncher<P, C> | null>;
  /** Whether a member started with `a` is still of use for tasks prepared as `b` (else stopped). */
  compatible(a: P, b: P): boolean;
  /**
   * Whether a member started with `a` may serve a task prepared as `b` (default: compatible).
   * Members of use but of another kind (a prepared sandbox's shape) stay; when the pool is full
   * and a task found none of its kind, the oldest of another kind makes room.
   */
  matches?(a: P, b: P): boolean;
  log?: Logger;
}

export interface LauncherPool<P, C extends PoolChild = PoolChild> {
  /**
   * A member for this task (removed from the pool), or undefined: none ready. The taker calls
   * {@link LauncherPool.refill} once its task has started: a replacement placed into its cgroup
   * meanwhile would hold the kernel's cgroup attach lock while the task's bwrap forks.
   */
  take(p: P): PreparedLauncher<P, C> | undefined;
  /** Prepares members up to the current target (soon, not now). */
  refill(): void;
  /**
   * Forgets a member that ended by itself. One that ended before it was ready counts as a
   * failed start: refilling waits before the next.
   */
  discard(member: PreparedLauncher<P, C>): void;
  /** Members held now. */
  size(): number;
  /** The size the pool currently refills to. */
  target(): number;
  /** Stops every member and refills no more; resolves once they have exited. */
  close(): Promise<void>;
}

/** After a member could not be started, refilling waits this long. */
const RETRY_MS = 5_000;

export function createLauncherPool<P, C extends PoolChild = PoolChild>(
  options: LauncherPoolOptions<P, C>,
): LauncherPool<P, C> {
  const members: PreparedLauncher<P, C>[] = [];
  let target = options.max > 0 ? 1 : 0;
  let starting = 0;
  let closed = false;
  let latest: P | undefined;
  let missedSinceTick = false;
  let retryAt = 0;
  let refillScheduled = false;
  /** Members being started, and members started after close() (being stopped). */
  const starts = new Set<Promise<PreparedLauncher<P, C> | null>>();
  const stopping = new Set<Promise<void>>();

  const shrink = setInterval(() => {
    if (!missedSinceTick && target > 1) {
      target--;
      const surplus = members.length - target;
      if (surplus > 0) for (const m of members.splice(0, surplus)) m.dispose();
    }
    missedSinceTick = false;
  }, options.idleMs);
  shrink.unref();

  function scheduleRefill(): void {
    if (refillScheduled || closed) return;
    refillScheduled = true;
    // After the taking task's own start-up work, not inside it.
    setImmediate(() => {
      refillScheduled = false;
      void refill();
    });
  }

  /** Stops a member and resolves once its launcher has exited. */
  function stop(m: PreparedLauncher<P, C>): Promise<void> {
    return new Promise<void>((resolve) => {
      if (m.child.exitCode !== null || m.child.signalCode !== null) {
        resolve();
        return;
      }
      m.child.once("close", () => resolve());
      m.dispose();
    });
  }

  async function refill(): Promise<void> {
    while (!closed && latest !== undefined && members.length + starting < target) {
      if (Date.now() < retryAt) {
        setTimeout(scheduleRefill, retryAt - Date.now()).unref();
        return;
      }
      starting++;
      let m: PreparedLauncher<P, C> | null = null;
      const pending = options.start(latest);
      starts.add(pending);
      try {
        m = await pending;
      } catch (err) {
        options.log?.warn({ err }, "cannot prepare a sandbox launcher; tasks start their own");
      } finally {
        starting--;
        starts.delete(pending);
      }
      if (m === null) {
        retryAt = Date.now() + RETRY_MS;
        continue;
      }
      if (closed) {
        stopping.add(stop(m));
        return;
      }
      members.push(m);
    }
  }

  return {
    take(p) {
      if (options.max <= 0 || closed) return undefined;
      latest = p;
      // Members of an older, different preparation are of no use any more.
      for (let i = members.length - 1; i >= 0; i--) {
        const m = members[i] as PreparedLauncher<P, C>;
        if (!options.compatible(m.p, p)) {
          members.splice(i, 1);
          m.dispose();
        }
      }
      const matches = options.matches ?? options.compatible;
      // Only a member already in its cgroup: one still being placed is the pool's until then.
      const i = members.findIndex(
        (m) =>
          m.ready === true &&
          m.child.exitCode === null &&
          m.child.signalCode === null &&
          matches(m.p, p),
      );
      if (i < 0) {
        missedSinceTick = true;
        if (target < options.max) target++;
        // Full of another kind: its oldest member makes room for this task's kind.
        if (members.length + starting >= target) {
          const j = members.findIndex((m) => !matches(m.p, p));
          if (j >= 0) members.splice(j, 1)[0]?.dispose();
        }
        scheduleRefill();
        return undefined;
      }
      const [m] = members.splice(i, 1);
      m?.detach();
      return m;
    },
    refill: scheduleRefill,
    discard(member) {
      const i = members.indexOf(member);
      if (i >= 0) members.splice(i, 1);
      if (i >= 0 && member.ready !== true && !closed) {
        options.log?.warn(
          "a prepared sandbox launcher ended before it was ready; the next one waits 5 s",
        );
        retryAt = Date.now() + RETRY_MS;
      }
      scheduleRefill();
    },
    size: () => members.length,
    target: () => target,
    async close() {
      closed = true;
      clearInterval(shrink);
      // Members still being started are stopped as soon as they are (refill sees `closed`).
      await Promise.allSettled([...starts]);
      await new Promise((r) => setImmediate(r));
      await Promise.all([...members.splice(0).map(stop), ...stopping]);
    },
  };
}
