import { type ChildProcess, spawn } from "node:child_process";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import { ROOT } from "../harness.js";

/** A free loopback TCP port (closed again before it is returned). */
export async function freePort(): Promise<number> {
  const s = http.createServer();
  await new Promise<void>((r) => s.listen(0, "127.0.0.1", r));
  const { port } = s.address() as AddressInfo;
  await new Promise((r) => s.close(r));
  return port;
}

/**
 * Starts @modelcontextprotocol/server-everything over Streamable HTTP on
 * `port` (its /mcp endpoint) and resolves once it listens.
 */
export function startEverything(port: number): Promise<ChildProcess> {
  const child = spawn(
    process.execPath,
    [
      join(ROOT, "node_modules/@modelcontextprotocol/server-everything/dist/index.js"),
      "streamableHttp",
    ],
    { env: { ...process.env, PORT: String(port) }, stdio: ["ignore", "ignore", "pipe"] },
  );
  return new Promise((resolve, reject) => {
    let err = "";
    child.stderr?.on("data", (d: Buffer) => {
      err += d.toString();
      if (/listening on port/.test(err)) resolve(child);
    });
    child.on("exit", (c) => reject(new Error(`server-everything exited ${c}: ${err}`)));
  });
}
