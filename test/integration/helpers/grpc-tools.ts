import { execFile } from "node:child_process";
import { join, resolve } from "node:path";
import { promisify } from "node:util";

const run = promisify(execFile);
const ROOT = resolve(import.meta.dirname, "..", "..", "..");

/** Paths of the pinned gRPC command-line tools. */
export interface GrpcTools {
  grpcurl: string;
  healthProbe: string;
}

let installed: Promise<GrpcTools> | undefined;

/**
 * grpcurl and grpc-health-probe, installed by scripts/install-grpc-tools.sh
 * (pinned, built from the Go module proxy into .tools/bin; a no-op when
 * present). Rejects loudly when they cannot be installed: these tests never skip.
 */
export function grpcTools(): Promise<GrpcTools> {
  installed ??= run("bash", [join(ROOT, "scripts", "install-grpc-tools.sh")], {
    timeout: 900_000,
    maxBuffer: 16 * 1024 * 1024,
  }).then(
    ({ stdout }) => {
      const bin = stdout.trim().split("\n").at(-1) ?? "";
      return { grpcurl: join(bin, "grpcurl"), healthProbe: join(bin, "grpc-health-probe") };
    },
    (err: { stderr?: string; message: string }) => {
      throw new Error(
        `grpcurl / grpc-health-probe could not be installed (bash scripts/install-grpc-tools.sh): ${err.stderr ?? err.message}`,
      );
    },
  );
  return installed;
}

/** The outcome of running a tool: exit code and output. */
export interface ToolRun {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs `bin` with `args` (no shell) and resolves whatever its exit code; `env` adds variables. */
export async function runTool(
  bin: string,
  args: string[],
  env: Record<string, string> = {},
  timeoutMs = 20_000,
): Promise<ToolRun> {
  try {
    const { stdout, stderr } = await run(bin, args, {
      timeout: timeoutMs,
      env: { ...process.env, ...env },
    });
    return { code: 0, stdout, stderr };
  } catch (err) {
    const e = err as { code?: number | string; stdout?: string; stderr?: string };
    if (typeof e.code !== "number") throw err;
    return { code: e.code, stdout: e.stdout ?? "", stderr: e.stderr ?? "" };
  }
}

/** grpc-health-probe's exit code for a healthy (SERVING) target. */
export const PROBE_SERVING = 0;
/** grpc-health-probe's exit code when the target answers anything but SERVING. */
export const PROBE_UNHEALTHY = 4;

/** Runs grpc-health-probe against `addr` (host:port), optionally for one service. */
export async function healthProbe(addr: string, service?: string): Promise<ToolRun> {
  const { healthProbe: bin } = await grpcTools();
  return runTool(bin, ["-addr", addr, ...(service === undefined ? [] : ["-service", service])]);
}

/** Calls `probe` every 100 ms until it returns a value; rejects after timeoutMs with the last value. */
export async function eventually<T>(
  what: string,
  probe: () => Promise<T | undefined>,
  timeoutMs = 10_000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`${what}: not within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 100));
  }
}
