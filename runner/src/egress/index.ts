/**
 * Network "restricted" on the runner: one egress proxy per task (proxy.ts) on a unix socket in
 * a fresh directory that the sandbox gets bind-mounted (docs/adr/0018-egress-proxy.md).
 *
 * @module
 */
import { chmod, chown, mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Logger } from "pino";
import type { RunnerConfig } from "../config.js";
import type { StartEgress } from "../task-manager.js";
import { type EgressResolver, startEgressProxy } from "./proxy.js";

export {
  type EgressProxy,
  type EgressProxyOptions,
  type EgressRecord,
  type EgressResolver,
  MAX_EGRESS_ATTEMPTS,
  startEgressProxy,
} from "./proxy.js";

/** Options of {@link createEgressStarter}. */
export interface EgressStarterOptions {
  /** The runner's `egress` configuration. */
  config: RunnerConfig["egress"];
  /** Owner of the socket directory and socket when the runner is root (the sandbox's uid/gid). */
  sandboxUid: number;
  sandboxGid: number;
  logger: Logger;
}

/**
 * The task manager's `startEgress`: a fresh 0700 directory owned by the sandbox user, the
 * proxy listening on `proxy.sock` in it (0600), removed when the task ends.
 *
 * @example
 * const tasks = createTaskManager({ ...options, startEgress: createEgressStarter({ config: config.egress, sandboxUid, sandboxGid, logger }) });
 */
export function createEgressStarter(options: EgressStarterOptions): StartEgress {
  const { config, logger } = options;
  const test = config.testResolver;
  const resolve: EgressResolver | undefined =
    test === undefined
      ? undefined
      : async (host) => {
          const addresses = test.hosts[host];
          if (addresses === undefined || addresses.length === 0) {
            throw Object.assign(new Error(`${host} is not in the test resolver`), {
              code: "ENOTFOUND",
            });
          }
          return addresses;
        };
  const dial =
    test === undefined
      ? undefined
      : (address: string, port: number) => {
          const to = test.dial[`${address}:${port}`];
          if (to === undefined) return { host: address, port };
          const [host = "127.0.0.1", p = "0"] = to.split(":");
          return { host, port: Number(p) };
        };
  if (test !== undefined)
    logger.warn("egress: the TEST-ONLY resolver is on (MCP_GATEWAY_TESTING=1)");
  return async (taskId, egress, onConnection) => {
    const dir = await mkdtemp(join(config.socketRoot ?? tmpdir(), "mcpg-egress-"));
    try {
      const socketPath = join(dir, "proxy.sock");
      const proxy = await startEgressProxy({
        socketPath,
        egress,
        onConnection,
        timeoutMs: config.timeoutMs,
        logger: logger.child({ taskId }),
        ...(resolve ? { resolve } : {}),
        ...(dial ? { dial } : {}),
      });
      await chmod(socketPath, 0o600);
      if (process.getuid?.() === 0) {
        await chown(socketPath, options.sandboxUid, options.sandboxGid);
        await chown(dir, options.sandboxUid, options.sandboxGid);
      }
      return {
        socketDir: dir,
        async close() {
          await proxy.close();
          await rm(dir, { recursive: true, force: true });
        },
      };
    } catch (err) {
      await rm(dir, { recursive: true, force: true });
      throw err;
    }
  };
}
