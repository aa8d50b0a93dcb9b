/**
 * The runner's side of the spawner (runner/native/src/spawner.c, ADR 0023): a small native
 * process that forks and executes the sandbox launchers on request, so the runner never
 * forks itself. `child_process.spawn` copies the runner's page tables and blocks its event
 * loop until the child has executed (≈ 4 ms per task at 150 MB resident, more under load);
 * here a spawn is one request written to a pipe and one line read back.
 *
 * A spawned process is a {@link SpawnedProcess}: the part of Node's `ChildProcess` the
 * sandbox uses (stdio streams by descriptor, pid, kill, "exit" and "close"). The runner's
 * ends of the child's pipes are opened through `/proc/<spawner>/fd/N` (pipes, not sockets,
 * so that works), after which the spawner closes its copies.
 *
 * If the spawner dies, every launcher dies with it (PR_SET_PDEATHSIG): their processes
 * report "exit" with SIGKILL, and the next spawn starts a new spawner.
 *
 * @module
 */
import { type ChildProcess, spawn } from "node:child_process";
import { EventEmitter } from "node:events";
import { closeSync, constants as fsConstants, openSync } from "node:fs";
import { Socket } from "node:net";
import { constants as osConstants } from "node:os";
import type { Readable, Writable } from "node:stream";
import type { Logger } from "pino";

/** One descriptor of a spawned child: a pipe it reads or writes, /dev/null, or one of ours. */
export type StdioSlot = "read" | "write" | "ignore" | { fd: number };

export interface SpawnRequest {
  /** Absolute path of the program. */
  path: string;
  /** argv, argv[0] included; a function is given the spawner's pid (the child's parent). */
  argv: readonly string[] | ((spawnerPid: number) => readonly string[]);
  /** The child's descriptors 0, 1, 2, … in order. The environment is always empty. */
  stdio: readonly StdioSlot[];
  uid?: number;
  gid?: number;
}

/** A process started by the spawner: what the sandbox needs of a `ChildProcess`. */
export interface SpawnedProcess {
  readonly pid: number;
  /** By descriptor: a Writable for "read" slots, a Readable for "write" slots, else null. */
  readonly stdio: ReadonlyArray<Socket | null>;
  readonly stdin: Writable | null;
  readonly stdout: Readable | null;
  readonly stderr: Readable | null;
  exitCode: number | null;
  signalCode: NodeJS.Signals | null;
  /** Signals the process unless it has been reaped already (never a reused pid). */
  kill(signal?: NodeJS.Signals): boolean;
  /** Whether the pending exit keeps the runner's event loop alive (default: it does). */
  ref(): void;
  unref(): void;
  on(
    event: "exit" | "close",
    listener: (code: number | null, signal: NodeJS.Signals | null) => void,
  ): this;
  once(
    event: "exit" | "close",
    listener: (code: number | null, signal: NodeJS.Signals | null) => void,
  ): this;
  off(
    event: "exit" | "close",
    listener: (code: number | null, signal: NodeJS.Signals | null) => void,
  ): this;
}

export interface Spawner {
  /** Starts a process; rejects with a clear message when it could not be started. */
  spawn(request: SpawnRequest): Promise<SpawnedProcess>;
  /** The spawner's pid (the launchers' parent), starting one if none runs. */
  pid(): Promise<number>;
  /**
   * With `slotsDir`: null once the spawner's slots tmpfs is mounted there, else why it is not
   * (prepared sandboxes are then not used; ADR 0028).
   */
  slots(): Promise<string | null>;
  /**
   * A slot request (spawner.c): "slot" NAME, "bind" NAME SRC or "unslot" NAME; rejects with
   * the spawner's reason.
   */
  slot(op: "slot" | "bind" | "unslot", name: string, src?: string): Promise<void>;
  /**
   * Takes no more requests; the spawner exits once the processes it started have ended
   * (resolves then, or at once while some still run).
   */
  close(): Promise<void>;
}

export class SpawnError extends Error {
  override name = "SpawnError";
}

class Spawned extends EventEmitter implements SpawnedProcess {
  exitCode: number | null = null;
  signalCode: NodeJS.Signals | null = null;
  readonly stdio: Array<Socket | null>;
  private open = 0;
  private exited = false;
  private closed = false;
  private referenced = true;

  constructor(
    readonly pid: number,
    stdio: Array<Socket | null>,
    private readonly control: { kill(sig: number): void; ref(on: boolean): void },
  ) {
    super();
    this.stdio = stdio;
    // As with a ChildProcess, "close" waits for what the child writes (its EOF, once every
    // process holding the pipe has ended), not for the pipes it reads.
    for (const s of stdio) {
      if (s === null || !s.readable) continue;
      this.open++;
      s.once("close", () => {
        this.open--;
        this.maybeClose();
      });
    }
  }

  get stdin(): Writable | null {
    return this.stdio[0] ?? null;
  }
  get stdout(): Readable | null {
    return this.stdio[1] ?? null;
  }
  get stderr(): Readable | null {
    return this.stdio[2] ?? null;
  }

  kill(signal: NodeJS.Signals = "SIGTERM"): boolean {
    if (this.exited) return false;
    const n = osConstants.signals[signal];
    if (n === undefined) throw new SpawnError(`unknown signal ${signal}`);
    this.control.kill(n);
    return true;
  }

  ref(): void {
    if (this.referenced || this.exited) return;
    this.referenced = true;
    this.control.ref(true);
  }

  unref(): void {
    if (!this.referenced || this.exited) return;
    this.referenced = false;
    this.control.ref(false);
  }

  /** From the spawner: reaped with this code or signal. */
  exit(code: number | null, signal: NodeJS.Signals | null): void {
    if (this.exited) return;
    this.exited = true;
    if (this.referenced) this.control.ref(false);
    this.exitCode = code;
    this.signalCode = signal;
    // Nothing reads the pipes it read any more (a pipe's writer notices only when it writes);
    // what it wrote and nobody reads is drained to its EOF, as Node does for a ChildProcess.
    for (const s of this.stdio) {
      if (s === null) continue;
      if (s.readable) s.resume();
      else s.destroy();
    }
    this.emit("exit", code, signal);
    this.maybeClose();
  }

  private maybeClose(): void {
    if (this.closed || !this.exited || this.open > 0) return;
    this.closed = true;
    this.emit("close", this.exitCode, this.signalCode);
  }
}

function signalName(n: number): NodeJS.Signals | null {
  for (const [name, value] of Object.entries(osConstants.signals)) {
    if (value === n) return name as NodeJS.Signals;
  }
  return null;
}

/** Largest request the spawner reads (spawner.c MAX_FRAME), and its most fields. */
const MAX_FRAME = 4 << 20;
const MAX_FIELDS = 4095;

/** One request frame: 4-byte little-endian length, then NUL-terminated fields. */
function frame(fields: readonly string[]): Buffer {
  for (const f of fields) {
    if (f.includes("\0")) throw new SpawnError("a spawn request field contains a NUL byte");
  }
  const body = Buffer.from(`${fields.join("\0")}\0`, "utf8");
  // (the spawner would refuse the request, or end on a frame it cannot read)
  if (body.length > MAX_FRAME || fields.length > MAX_FIELDS) {
    throw new SpawnError("the command line is too long to start");
  }
  const out = Buffer.allocUnsafe(4 + body.length);
  out.writeUInt32LE(body.length, 0);
  body.copy(out, 4);
  return out;
}

interface Running {
  proc: ChildProcess;
  pid: number;
  pending: Map<string, { resolve(line: string[]): void; stdio: readonly StdioSlot[] }>;
  live: Map<string, Spawned>;
  /** Exits that arrived before their spawn's caller took the child over. */
  early: Map<string, string[] | null>;
  /** Children whose pending exit keeps the event loop alive. */
  refs: number;
  dead: boolean;
  /** The first line's verdict on the slots tmpfs (slotsDir only): null, or why not. */
  slots: Promise<string | null>;
  settleSlots(why: string | null): void;
}

/**
 * Starts spawners on demand: `helperPath spawner <our pid>`.
 *
 * @example
 * const spawner = createSpawner({ helperPath });
 * const p = await spawner.spawn({ path, argv, stdio: ["ignore", "write", "write"] });
 * p.stdout?.on("data", …); p.on("close", (code, sig) => …);
 */
export function createSpawner(options: {
  helperPath: string;
  /**
   * An empty directory for the slots of prepared sandboxes (spawner.c, ADR 0028), asked for
   * when a spawner starts.
   */
  slotsDir?: () => string | undefined;
  log?: Logger;
}): Spawner {
  const log = options.log;
  let current: Running | null = null;
  let starting: Promise<Running> | null = null;
  let counter = 0;
  let closing = false;

  function adjustRef(r: Running, on: boolean): void {
    r.refs += on ? 1 : -1;
    const out = r.proc.stdout as unknown as { ref(): void; unref(): void } | null;
    if (r.refs > 0) out?.ref();
    else out?.unref();
  }

  function died(r: Running, why: string): void {
    if (r.dead) return;
    r.dead = true;
    if (current === r) current = null;
    if (!closing)
      log?.warn({ why, pid: r.pid }, "the sandbox spawner ended; its launchers die with it");
    r.settleSlots(`the spawner ended (${why})`);
    for (const p of r.pending.values()) p.resolve(["failed", "-", `the spawner ended (${why})`]);
    r.pending.clear();
    // PR_SET_PDEATHSIG took every launcher with it.
    for (const s of r.live.values()) s.exit(null, "SIGKILL");
    r.live.clear();
  }

  function start(): Promise<Running> {
    return new Promise<Running>((resolve, reject) => {
      const slotsDir = options.slotsDir?.();
      const proc = spawn(
        options.helperPath,
        ["spawner", String(process.pid), ...(slotsDir === undefined ? [] : [slotsDir])],
        { stdio: ["pipe", "pipe", "pipe"], env: {} },
      );
      let settleSlots: (why: string | null) => void = () => undefined;
      const slots = new Promise<string | null>((resolve) => {
        settleSlots = resolve;
      });
      if (slotsDir === undefined) settleSlots("no slots directory");
      const r: Running = {
        proc,
        pid: proc.pid ?? -1,
        pending: new Map(),
        live: new Map(),
        early: new Map(),
        refs: 0,
        dead: false,
        slots,
        settleSlots,
      };
      let text = "";
      let stderr = "";
      proc.stdout?.on("data", (chunk: Buffer) => {
        text += chunk.toString("utf8");
        let nl = text.indexOf("\n");
        while (nl >= 0) {
          const line = text.slice(0, nl).split(" ");
          text = text.slice(nl + 1);
          onLine(r, line);
          nl = text.indexOf("\n");
        }
      });
      proc.stderr?.on("data", (chunk: Buffer) => {
        if (stderr.length < 4096) stderr += chunk.toString("utf8");
      });
      proc.stdin?.on("error", () => {
        // the spawner died: reported through its exit
      });
      proc.on("error", (err) => {
        died(r, err.message);
        reject(new SpawnError(`cannot start the sandbox spawner: ${err.message}`));
      });
      // "close", not "exit": its last answers (exits of its children) are read first.
      proc.on("close", (code, sig) => {
        died(r, `exit code ${code}, signal ${sig ?? "none"}${stderr ? `: ${stderr.trim()}` : ""}`);
      });
      // Idle, it keeps nothing alive; a child's pending exit refs its answer pipe.
      proc.unref();
      (proc.stdin as unknown as { unref?: () => void } | null)?.unref?.();
      (proc.stdout as unknown as { unref?: () => void } | null)?.unref?.();
      (proc.stderr as unknown as { unref?: () => void } | null)?.unref?.();
      proc.once("spawn", () => resolve(r));
    });
  }

  function onLine(r: Running, line: string[]): void {
    const [kind, id] = line;
    if (id === undefined) return;
    if (kind === "slots") {
      r.settleSlots(id === "ok" ? null : line.slice(2).join(" ") || "refused");
      return;
    }
    if (kind === "spawned" || kind === "failed" || kind === "ok") {
      const p = r.pending.get(id);
      if (p !== undefined) {
        r.pending.delete(id);
        if (kind === "spawned") r.early.set(id, null);
        p.resolve(line);
      } else if (kind === "failed") {
        log?.warn({ line: line.join(" ") }, "the sandbox spawner refused a request");
      }
    } else if (kind === "exit") {
      const s = r.live.get(id);
      if (s === undefined) {
        if (r.early.has(id)) r.early.set(id, line);
        return;
      }
      r.live.delete(id);
      onExit(r, s, line);
    }
  }

  function onExit(r: Running, s: Spawned, line: string[]): void {
    const code = Number(line[2]);
    const sig = Number(line[3]);
    s.exit(code >= 0 ? code : null, sig > 0 ? signalName(sig) : null);
    endWhenIdle(r);
  }

  /** After close(): the spawner's EOF once nothing of its work is left. */
  function endWhenIdle(r: Running): void {
    if (!closing || r.dead || r.live.size > 0 || r.pending.size > 0 || r.early.size > 0) return;
    r.proc.stdin?.end();
  }

  async function running(): Promise<Running> {
    if (closing) throw new SpawnError("the sandbox is closing");
    if (current !== null && !current.dead) return current;
    if (starting === null) {
      starting = start().then(
        (r) => {
          current = r;
          starting = null;
          return r;
        },
        (err: unknown) => {
          starting = null;
          throw err;
        },
      );
    }
    return starting;
  }

  /** Sends one request and resolves with its answer line (the pipe keeps the loop alive). */
  async function ask(
    r: Running,
    id: string,
    body: Buffer,
    stdio: readonly StdioSlot[],
  ): Promise<string[]> {
    const answer = await new Promise<string[]>((resolve) => {
      r.pending.set(id, { resolve, stdio });
      adjustRef(r, true);
      if (r.dead) resolve(["failed", id, "the spawner has ended"]);
      else r.proc.stdin?.write(body);
    });
    adjustRef(r, false);
    return answer;
  }

  function send(r: Running, fields: readonly string[]): void {
    if (r.dead) return;
    r.proc.stdin?.write(frame(fields));
  }

  /** Our end of slot i: /proc/<spawner>/fd/<fd>, opened non-blocking for a net.Socket. */
  function openEnd(r: Running, fd: number, slot: "read" | "write"): Socket {
    // "read": the child reads, we write.
    const flags =
      (slot === "read" ? fsConstants.O_WRONLY : fsConstants.O_RDONLY) | fsConstants.O_NONBLOCK; // (libuv adds O_CLOEXEC)
    const ours = openSync(`/proc/${r.pid}/fd/${fd}`, flags);
    try {
      return new Socket({ fd: ours, readable: slot === "write", writable: slot === "read" });
    } catch (err) {
      closeSync(ours);
      throw err;
    }
  }

  return {
    async spawn(request) {
      const r = await running();
      const id = String(++counter);
      const tokens = request.stdio.map((s) =>
        s === "read" ? "r" : s === "write" ? "w" : s === "ignore" ? "n" : `i${s.fd}`,
      );
      const fields = [
        "spawn",
        id,
        request.uid === undefined ? "-" : String(request.uid),
        request.gid === undefined ? "-" : String(request.gid),
        tokens.join(","),
        request.path,
        ...(typeof request.argv === "function" ? request.argv(r.pid) : request.argv),
      ];
      const body = frame(fields); // throws before anything is sent
      const answer = await ask(r, id, body, request.stdio);
      if (answer[0] !== "spawned") {
        endWhenIdle(r);
        throw new SpawnError(answer.slice(2).join(" ") || "the spawner refused the request");
      }
      const pid = Number(answer[2]);
      const fds = (answer[3] ?? "").split(",");
      const stdio: Array<Socket | null> = [];
      try {
        request.stdio.forEach((slot, i) => {
          const fd = fds[i];
          if ((slot === "read" || slot === "write") && fd !== undefined && fd !== "-") {
            stdio.push(openEnd(r, Number(fd), slot));
          } else {
            stdio.push(null);
          }
        });
      } catch (err) {
        for (const s of stdio) s?.destroy();
        r.early.delete(id);
        send(r, ["kill", id, String(osConstants.signals.SIGKILL)]);
        send(r, ["taken", id]);
        endWhenIdle(r);
        throw new SpawnError(`cannot open the launcher's pipes: ${(err as Error).message}`);
      }
      // Our copies are open: the spawner closes its own.
      send(r, ["taken", id]);
      const child = new Spawned(pid, stdio, {
        kill: (sig) => send(r, ["kill", id, String(sig)]),
        ref: (on) => adjustRef(r, on),
      });
      adjustRef(r, true);
      const early = r.early.get(id);
      r.early.delete(id);
      // An exit that came first is told once the caller has had its chance to listen.
      if (early) setImmediate(() => onExit(r, child, early));
      else if (r.dead) setImmediate(() => child.exit(null, "SIGKILL"));
      else r.live.set(id, child);
      return child;
    },
    async pid() {
      return (await running()).pid;
    },
    async slots() {
      const r = await running();
      // (its answer pipe keeps the event loop alive until the first line has come)
      adjustRef(r, true);
      try {
        return await r.slots;
      } finally {
        adjustRef(r, false);
      }
    },
    async slot(op, name, src) {
      const r = await running();
      const id = String(++counter);
      const body = frame([op, id, name, ...(src === undefined ? [] : [src])]);
      const answer = await ask(r, id, body, []);
      endWhenIdle(r);
      if (answer[0] !== "ok") {
        throw new SpawnError(answer.slice(2).join(" ") || `the spawner refused ${op}`);
      }
    },
    async close() {
      closing = true;
      const r = current ?? (starting ? await starting.catch(() => null) : null);
      if (r === null || r.dead) return;
      if (r.live.size > 0 || r.pending.size > 0 || r.early.size > 0) {
        // Still at work: the pipes must still be taken and kills still sent. The spawner gets
        // its EOF once the last of them has ended (endWhenIdle); this does not wait for that.
        return;
      }
      const exited = new Promise<void>((resolve) => r.proc.once("close", () => resolve()));
      r.proc.ref(); // (an idle spawner is unreferenced: keep the loop until it has gone)
      r.proc.stdin?.end();
      await exited;
    },
  };
}
