/**
 * A place in the {@link FairQueue}: a task waiting for a runner with room.
 */
export interface Ticket {
  /** The tenant the task belongs to. */
  readonly tenant: string;
  /**
   * Resolves true once it is this ticket's turn to try a runner, false when `ms`
   * passed first (the caller checks for cancellation or its deadline, then waits again).
   */
  turn(ms: number): Promise<boolean>;
  /** The attempt started the task: the ticket leaves and the next turn goes to the next tenant. */
  taken(): void;
  /** No runner took it: it keeps its place and the turn comes back after the back-off. */
  refused(): void;
  /** Gives up the place (cancelled, deadline, shutdown), with or without the turn. */
  leave(): void;
}

/** Options of {@link createFairQueue}. */
export interface FairQueueOptions {
  /** Wait after a refused attempt before the next turn is given, ms (default 200). */
  backoffMs?: number;
  /** Hears of every ticket entering (+1) and leaving (-1), for a queue-length gauge. */
  onSize?: (delta: 1 | -1) => void;
}

/** The edge's queue of tasks waiting for a runner. */
export interface FairQueue {
  /** Enters a task of `tenant` at the end of its tenant's line. */
  enter(tenant: string): Ticket;
  /** Tickets waiting (any tenant). */
  size(): number;
  /** A slot may have freed (a task ended): the next turn is given now, not after the back-off. */
  wake(): void;
}

interface Entry extends Ticket {
  grant?: (() => void) | undefined;
  granted: boolean;
  gone: boolean;
}

/**
 * Fair share of runner slots between tenants (issue 21, finding 4). When every
 * runner is full, the tasks that wait are given turns one at a time, round
 * robin over tenants — one line per tenant, in the order its tasks entered —
 * and a tenant moves to the back of the rotation each time one of its tasks
 * starts. A tenant with 30 tasks waiting and one with a single task get the
 * freed slots alternately, instead of in proportion to how many tasks each
 * has queued. Only one attempt is in flight at a time; a refused attempt (all
 * runners still full) keeps its place and the turn comes back after a back-off,
 * so full runners are not asked more than 1/backoff times a second. Per edge:
 * edges sharing a store each keep their own rotation.
 *
 * @example
 * const queue = createFairQueue();
 * const ticket = queue.enter("acme");
 * while (!(await ticket.turn(1000))) if (cancelled()) return ticket.leave();
 * (await tryRunner()) ? ticket.taken() : ticket.refused();
 */
export function createFairQueue(options: FairQueueOptions = {}): FairQueue {
  const backoffMs = options.backoffMs ?? 200;
  /** Lines by tenant; the Map's order is the rotation (a served tenant is moved to the end). */
  const lines = new Map<string, Entry[]>();
  let holder: Entry | undefined;
  let backoff: NodeJS.Timeout | undefined;
  let waiting = 0;

  function next(): void {
    if (holder || backoff) return;
    for (const line of lines.values()) {
      const head = line[0];
      if (!head) continue;
      holder = head;
      head.granted = true;
      head.grant?.();
      return;
    }
  }

  function remove(e: Entry, rotate: boolean): void {
    if (e.gone) return;
    e.gone = true;
    waiting--;
    options.onSize?.(-1);
    const line = lines.get(e.tenant);
    if (line) {
      const i = line.indexOf(e);
      if (i >= 0) line.splice(i, 1);
      if (line.length === 0) lines.delete(e.tenant);
      else if (rotate) {
        // A served tenant goes to the back of the rotation.
        lines.delete(e.tenant);
        lines.set(e.tenant, line);
      }
    }
    if (holder === e) holder = undefined;
    next();
  }

  return {
    size: () => waiting,
    wake() {
      if (!backoff) return;
      clearTimeout(backoff);
      backoff = undefined;
      next();
    },
    enter(tenant) {
      const e: Entry = {
        tenant,
        granted: false,
        gone: false,
        turn(ms) {
          if (e.gone) return Promise.resolve(false);
          if (e.granted) return Promise.resolve(true);
          return new Promise<boolean>((resolve) => {
            const timer = setTimeout(() => {
              e.grant = undefined;
              resolve(false);
            }, ms);
            e.grant = () => {
              clearTimeout(timer);
              e.grant = undefined;
              resolve(true);
            };
          });
        },
        taken: () => remove(e, true),
        refused() {
          if (holder !== e) return;
          e.granted = false;
          holder = undefined;
          backoff = setTimeout(() => {
            backoff = undefined;
            next();
          }, backoffMs);
          backoff.unref?.();
        },
        leave: () => remove(e, false),
      };
      let line = lines.get(tenant);
      if (!line) {
        line = [];
        lines.set(tenant, line);
      }
      line.push(e);
      waiting++;
      options.onSize?.(1);
      next();
      return e;
    },
  };
}
