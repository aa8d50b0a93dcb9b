/**
 * Network isolation: with network "none" the task reaches nothing on the host.
 */
import assert from "node:assert/strict";
import { createServer, type Server } from "node:net";
import { networkInterfaces } from "node:os";
import { after, before, describe, it } from "node:test";
import { bash, sandbox } from "./helpers.js";

let server: Server;
let port = 0;
let connections = 0;

before(async () => {
  const r = await sandbox.readiness();
  assert.equal(r.problem, "");
  server = createServer((sock) => {
    connections++;
    sock.end("hello from the host\n");
  });
  await new Promise<void>((resolve) => server.listen(0, "0.0.0.0", resolve));
  const addr = server.address();
  port = typeof addr === "object" && addr !== null ? addr.port : 0;
});
after(() => {
  server.close();
});

/** A non-loopback IPv4 address of this host, if any. */
function hostAddress(): string | null {
  for (const list of Object.values(networkInterfaces())) {
    for (const a of list ?? []) if (a.family === "IPv4" && !a.internal) return a.address;
  }
  return null;
}

describe("network none", () => {
  it("connecting to 127.0.0.1:<port of a host server> is refused; the server sees nothing", async () => {
    const before = connections;
    const r = await bash(`exec 3<>/dev/tcp/127.0.0.1/${port} && echo connected; echo rc=$?`);
    assert.doesNotMatch(r.stdout, /connected/);
    assert.match(r.stderr, /Connection refused/);
    assert.equal(connections, before);
  });

  it("the host's external address is unreachable too", async () => {
    const ip = hostAddress();
    assert.ok(ip, "this test needs a non-loopback IPv4 address on the host");
    const before = connections;
    const r = await bash(
      `timeout 3 bash -c 'exec 3<>/dev/tcp/${ip}/${port}' && echo connected; echo done`,
    );
    assert.doesNotMatch(r.stdout, /connected/);
    assert.match(r.stderr, /Network is unreachable/);
    assert.equal(connections, before);
  });

  it("only a loopback interface exists", async () => {
    const r = await bash("tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d ' '");
    assert.equal(r.stdout, "lo\n");
  });
});

describe("network host (positive control)", () => {
  it("the same connection succeeds when the task is granted the host network", async () => {
    const before = connections;
    const r = await bash(`exec 3<>/dev/tcp/127.0.0.1/${port} && head -n1 <&3`, { network: "host" });
    assert.equal(r.stdout, "hello from the host\n");
    assert.equal(connections, before + 1);
  });

  it("netlink stays denied by seccomp even with the host network", async () => {
    const r = await bash("ip link show 2>&1; echo rc=$?", { network: "host" });
    assert.match(r.stdout, /rc=[1-9]/);
    assert.doesNotMatch(r.stdout, /state UP/);
  });
});
