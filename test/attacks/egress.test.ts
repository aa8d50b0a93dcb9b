/**
 * Network "restricted" (issue 15): a task reaches only the hosts of the policy's egress
 * allowlist, through the runner's filtering proxy, and every attempt is a task event and an
 * audit record. There is no internet here: local HTTP and HTTPS servers stand in for the
 * world and the runner's TEST-ONLY resolver (egress.testResolver, refused without
 * MCP_GATEWAY_TESTING=1) maps names to documentation addresses that the proxy then dials on
 * loopback. The policy data's tenant "example-egress" lists allowed.test, *.wild.test,
 * 203.0.113.12, loopback.test and metadata.test, with caps of 1 MiB and 4 open connections.
 */
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer as createHttpServer, type Server as HttpServer } from "node:http";
import { createServer as createHttpsServer } from "node:https";
import { createServer as createTcpServer, type Server } from "node:net";
import { networkInterfaces, tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import type { CallToolResult } from "@modelcontextprotocol/sdk/types.js";
import { DEFAULT_HELPER_PATH } from "../../runner/src/sandbox/index.js";
import { connectJson, type Gateway, runCli, startGateway } from "../integration/harness.js";

const TENANT = "example-egress";
/** Documentation addresses (RFC 5737) the test resolver hands out; the proxy dials loopback. */
const ALLOWED_IP = "203.0.113.10";
const DENIED_IP = "203.0.113.11";
const LITERAL_IP = "203.0.113.12";

let gw: Gateway;
let env: Record<string, string>;
let adminToken = "";
let devToken = "";
let httpPort = 0;
let httpsPort = 0;
let canaryPort = 0;
let canaryConnections = 0;
const servers: Array<HttpServer | Server> = [];
const dir = mkdtempSync(join(tmpdir(), "mcpg-egress-"));
let caPem = "";

function listen(server: HttpServer | Server): Promise<number> {
  servers.push(server);
  return new Promise((resolve) => {
    server.listen(0, "127.0.0.1", () => {
      const a = server.address();
      resolve(typeof a === "object" && a !== null ? a.port : 0);
    });
  });
}

/** A self-signed certificate for the test names (openssl, as every runner host has). */
function makeCert(): { key: string; cert: string } {
  const key = join(dir, "key.pem");
  const cert = join(dir, "cert.pem");
  execFileSync(
    "openssl",
    [
      "req",
      "-x509",
      "-newkey",
      "rsa:2048",
      "-nodes",
      "-keyout",
      key,
      "-out",
      cert,
      "-days",
      "1",
      "-subj",
      "/CN=allowed.test",
      "-addext",
      `subjectAltName=DNS:allowed.test,DNS:*.wild.test,IP:${LITERAL_IP}`,
    ],
    { stdio: "pipe" },
  );
  return { key: readFileSync(key, "utf8"), cert: readFileSync(cert, "utf8") };
}

const handler = (
  req: import("node:http").IncomingMessage,
  res: import("node:http").ServerResponse,
) => {
  if (req.url === "/big") {
    res.end(Buffer.alloc(2 * 1024 * 1024, 0x61));
    return;
  }
  if (req.url === "/slow") {
    setTimeout(() => res.end("slow done\n"), 3000);
    return;
  }
  res.end(`hello from ${req.headers.host} ${req.url}\n`);
};

before(async () => {
  const tls = makeCert();
  caPem = tls.cert;
  httpPort = await listen(createHttpServer(handler));
  httpsPort = await listen(createHttpsServer({ key: tls.key, cert: tls.cert }, handler));
  canaryPort = await listen(
    createTcpServer((s) => {
      canaryConnections++;
      s.end("canary\n");
    }),
  );
  const config = join(dir, "runner.json");
  writeFileSync(
    config,
    JSON.stringify({
      egress: {
        testResolver: {
          hosts: {
            "allowed.test": [ALLOWED_IP],
            "denied.test": [DENIED_IP],
            "x.wild.test": [ALLOWED_IP],
            "loopback.test": ["127.0.0.1"],
            "metadata.test": ["169.254.169.254"],
          },
          dial: {
            [`${ALLOWED_IP}:80`]: `127.0.0.1:${httpPort}`,
            [`${ALLOWED_IP}:443`]: `127.0.0.1:${httpsPort}`,
            [`${DENIED_IP}:80`]: `127.0.0.1:${httpPort}`,
            [`${LITERAL_IP}:80`]: `127.0.0.1:${httpPort}`,
          },
        },
      },
    }),
  );
  gw = await startGateway({
    runnerArgs: ["--config", config],
    env: { MCP_GATEWAY_TESTING: "1" },
  });
  const token = await gw.token("egress-dev", ["developer"], ["--tenant", TENANT]);
  adminToken = await gw.token("egress-admin", ["admin"], ["--tenant", TENANT]);
  devToken = token;
  env = { MCP_GATEWAY_URL: gw.url, MCP_GATEWAY_TOKEN: token };
  // The test CA, for curl --cacert and Python's ssl context.
  const w = await connectJson(
    gw.url,
    "WriteFile",
    { path: "ca.pem", content: Buffer.from(caPem).toString("base64") },
    token,
  );
  assert.equal(w.status, 200, JSON.stringify(w.body));
});

after(async () => {
  await gw?.stop();
  for (const s of servers) s.close();
  rmSync(dir, { recursive: true, force: true });
});

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
  taskId: string;
}

/** `mcp-gateway exec --network restricted [--allow-host h]… -- cmd…` */
async function exec(cmd: string[], allow: string[] = [], network = "restricted"): Promise<Run> {
  const r = await runCli(
    ["exec", "--network", network, ...allow.flatMap((h) => ["--allow-host", h]), "--", ...cmd],
    env,
  );
  const taskId = /\[mcp\] (task-[0-9a-f-]{36})/.exec(r.stderr)?.[1] ?? "";
  return { ...r, taskId };
}

/** `bash -c script` in a restricted sandbox. */
const sh = (script: string, allow: string[] = []) => exec(["bash", "-c", script], allow);

interface AuditRow {
  taskId: string;
  operation: string;
  decision: string;
  reasons?: string[];
  outcome: string;
  paramsJson: string;
  detailsJson?: string;
}

/** The audit records of one task (operation filter optional). */
async function audit(taskId: string, operation = ""): Promise<AuditRow[]> {
  // The edge appends them while it stores the task's events; the task is finished here.
  const r = await connectJson(gw.url, "ListAuditEvents", { operation, pageSize: 1000 }, adminToken);
  assert.equal(r.status, 200, JSON.stringify(r.body));
  const events = (r.body.events ?? []) as AuditRow[];
  return events.filter((e) => e.taskId === taskId);
}

async function egressRecords(taskId: string): Promise<AuditRow[]> {
  assert.match(taskId, /^task-/, "no task id");
  return audit(taskId, "egress_connection");
}

const CURL = ["curl", "-sS", "--fail-with-body", "--max-time", "10", "--cacert", "ca.pem"];

describe("network restricted: allowed hosts", () => {
  it("mcp-gateway exec --network restricted --allow-host allowed.test -- curl https://allowed.test works", async () => {
    const r = await exec([...CURL, "https://allowed.test/"], ["allowed.test"]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, `hello from allowed.test /\n`);
    // The forwarder adds nothing to the task's output but the connection's event line.
    assert.doesNotMatch(r.stderr, /warning|forwarder/i);
    // The connection is a task event (on the CLI's stderr) and an audit record.
    assert.match(
      r.stderr,
      /\[mcp\] egress allowed\.test:443 allowed: \d+ bytes sent, \d+ received/,
    );
    const rows = await egressRecords(r.taskId);
    assert.equal(rows.length, 1);
    assert.equal(rows[0]?.decision, "allow");
    assert.equal(rows[0]?.outcome, "connected");
    assert.deepEqual(JSON.parse(rows[0]?.paramsJson ?? "{}"), {
      host: "allowed.test",
      port: 443,
      kind: "connect",
    });
    // The decision that allowed the task names the network and its hosts.
    const decisions = await audit(r.taskId, "execute");
    assert.equal(decisions[0]?.decision, "allow");
    assert.deepEqual(
      {
        network: JSON.parse(decisions[0]?.paramsJson ?? "{}").network,
        allow_hosts: JSON.parse(decisions[0]?.paramsJson ?? "{}").allow_hosts,
      },
      { network: "restricted", allow_hosts: ["allowed.test"] },
    );
    // ... and the effective allowlist and caps the decision gave the task.
    assert.deepEqual(JSON.parse(decisions[0]?.detailsJson ?? "{}").egress, {
      allow_hosts: ["allowed.test"],
      max_bytes: 1048576,
      max_connections: 4,
    });
  });

  it("plain HTTP goes through the proxy by absolute URL", async () => {
    const r = await exec([...CURL, "http://allowed.test/plain?x=1"]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, "hello from allowed.test /plain?x=1\n");
    const rows = await egressRecords(r.taskId);
    assert.equal(rows[0]?.decision, "allow");
    assert.equal(JSON.parse(rows[0]?.paramsJson ?? "{}").kind, "http");
  });

  it("Python urllib over HTTPS and HTTP uses the proxy variables", async () => {
    const py = [
      "import ssl, urllib.request",
      "ctx = ssl.create_default_context(cafile='ca.pem')",
      "print(urllib.request.urlopen('https://allowed.test/py', context=ctx, timeout=10).read().decode(), end='')",
      "print(urllib.request.urlopen('http://allowed.test/py2', timeout=10).read().decode(), end='')",
    ].join("\n");
    const r = await exec(["python3", "-c", py]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, "hello from allowed.test /py\nhello from allowed.test /py2\n");
    const rows = await egressRecords(r.taskId);
    assert.equal(rows.length, 2);
    assert.ok(rows.every((row) => row.decision === "allow"));
  });

  it("a wildcard entry admits names below its domain", async () => {
    const r = await exec([...CURL, "https://x.wild.test/w"]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, "hello from x.wild.test /w\n");
  });

  it("an IP literal is admitted only when it is listed", async () => {
    const ok = await exec([...CURL, `http://${LITERAL_IP}/ip`]);
    assert.equal(ok.code, 0, ok.stderr);
    assert.equal(ok.stdout, `hello from ${LITERAL_IP} /ip\n`);
    // allowed.test resolves to ALLOWED_IP, but the literal itself is not on the list.
    const no = await exec([...CURL, `http://${ALLOWED_IP}/ip`]);
    assert.equal(no.code, 22, no.stderr);
    assert.match(
      no.stdout,
      /denied: IP address 203\.0\.113\.10 port 80 is not in the egress allowlist/,
    );
    const rows = await egressRecords(no.taskId);
    assert.equal(rows[0]?.decision, "deny");
  });
});

describe("network restricted: refusals", () => {
  it("a host outside the list gets a 403 with the reason, and a deny record", async () => {
    const r = await exec([...CURL, "http://denied.test/"]);
    assert.equal(r.code, 22, r.stderr);
    assert.match(
      r.stdout,
      /mcp-gateway egress proxy: denied: host denied\.test port 80 is not in the egress allowlist/,
    );
    assert.match(r.stderr, /\[mcp\] egress denied\.test:80 denied: host denied\.test/);
    const rows = await egressRecords(r.taskId);
    assert.equal(rows.length, 1);
    assert.equal(rows[0]?.decision, "deny");
    assert.equal(rows[0]?.outcome, "refused");
    assert.match(rows[0]?.reasons?.[0] ?? "", /not in the egress allowlist/);
  });

  it("HTTPS to a host outside the list fails at CONNECT", async () => {
    const r = await exec([...CURL, "https://denied.test/"]);
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /403/);
    assert.equal((await egressRecords(r.taskId))[0]?.decision, "deny");
  });

  it("the request's list narrows the policy's: a policy host left out is refused", async () => {
    const r = await exec([...CURL, "https://x.wild.test/"], ["allowed.test"]);
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /egress x\.wild\.test:443 denied/);
  });

  it("a request can never widen the policy's list (PermissionDenied)", async () => {
    const r = await exec([...CURL, "http://denied.test/"], ["denied.test"]);
    assert.equal(r.code, 1);
    assert.match(
      r.stderr,
      /permission_denied.*allow_hosts entry "denied\.test" is not in the egress allowlist/,
    );
  });

  it("a malformed entry is InvalidArgument naming it", async () => {
    const r = await exec(["true"], ["http://allowed.test"]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /invalid_argument.*invalid allow_hosts entry "http:\/\/allowed\.test"/);
  });

  it("a listed name that resolves to loopback is refused (SSRF / DNS rebinding)", async () => {
    const r = await exec([...CURL, "http://loopback.test/"]);
    assert.equal(r.code, 22);
    assert.match(r.stdout, /loopback\.test resolves to 127\.0\.0\.1 \(loopback\)/);
    assert.equal((await egressRecords(r.taskId))[0]?.decision, "deny");
  });

  it("a listed name that resolves to the cloud metadata address is refused", async () => {
    const r = await exec([...CURL, "http://metadata.test/latest/meta-data/"]);
    assert.equal(r.code, 22);
    assert.match(r.stdout, /169\.254\.169\.254 \(link-local \(cloud metadata\)\)/);
    assert.equal((await egressRecords(r.taskId))[0]?.decision, "deny");
  });
});

/** A non-loopback IPv4 address of this host, if any. */
function hostAddress(): string | null {
  for (const list of Object.values(networkInterfaces())) {
    for (const a of list ?? []) if (a.family === "IPv4" && !a.internal) return a.address;
  }
  return null;
}

describe("network restricted: no other way out", () => {
  it("without the proxy variables, raw TCP, UDP and DNS find no route", async () => {
    const ip = hostAddress();
    assert.ok(ip, "this test needs a non-loopback IPv4 address on the host");
    const before = canaryConnections;
    const script = [
      "unset HTTP_PROXY HTTPS_PROXY ALL_PROXY http_proxy https_proxy all_proxy",
      `curl -sS --max-time 3 http://allowed.test/ && echo CURL-NOPROXY-OK`,
      `curl -sS --max-time 3 --noproxy '*' http://127.0.0.1:${httpPort}/ && echo CURL-LOOP-OK`,
      `timeout 3 bash -c 'exec 3<>/dev/tcp/127.0.0.1/${canaryPort}' && echo TCP-LOOP-OK`,
      `timeout 3 bash -c 'exec 3<>/dev/tcp/${ip}/${canaryPort}' && echo TCP-HOST-OK`,
      `python3 -c "import socket; s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.sendto(b'x', ('${ip}', 53)); print('UDP-OK')"`,
      "getent hosts allowed.test && echo DNS-OK",
      "echo done",
    ].join("; ");
    const r = await sh(script);
    assert.equal(r.code, 0, r.stderr);
    assert.doesNotMatch(r.stdout, /-OK/);
    assert.match(r.stdout, /done\n$/);
    assert.match(r.stderr, /Could not resolve host: allowed\.test/);
    assert.match(r.stderr, /Network is unreachable/);
    assert.equal(canaryConnections, before, "the host's canary server saw a connection");
    // Nothing of that reached the proxy.
    assert.equal((await egressRecords(r.taskId)).length, 0);
  });

  it("TCP connect reaches only the proxy's port: a listener the task opens on another loopback port is EACCES (Landlock)", async () => {
    const abi = Number(execFileSync(DEFAULT_HELPER_PATH, ["landlock-abi"], { encoding: "utf8" }));
    assert.ok(abi >= 4, `this test needs Landlock ABI ≥ 4 (Linux 6.7); the kernel has ${abi}`);
    // The task binds and listens (not a Landlock right here, so it works), then connects to
    // itself: without the rule that succeeds, as any loopback service in the namespace would.
    const py = [
      "import socket",
      "srv = socket.socket(); srv.bind(('127.0.0.1', 8080)); srv.listen(); print('listening')",
      "for port in (8080, 3128):",
      "    s = socket.socket()",
      "    try:",
      "        s.connect(('127.0.0.1', port)); print(port, 'connected')",
      "    except OSError as e:",
      "        print(port, e.errno)",
    ].join("\n");
    const r = await exec(["python3", "-c", py]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^listening$/m);
    assert.match(r.stdout, /^8080 13$/m, r.stdout); // EACCES from the kernel
    assert.match(r.stdout, /^3128 connected$/m, r.stdout); // the forwarder still listens
    // bash's /dev/tcp is refused the same way (any program of the task).
    const b = await sh(
      [
        "python3 -c \"import socket,time; s=socket.socket(); s.bind(('127.0.0.1', 8081)); s.listen(); time.sleep(10)\" &",
        "p=$!; sleep 1",
        "(exec 3<>/dev/tcp/127.0.0.1/8081) && echo TCP-INNER-OK",
        "(exec 3<>/dev/tcp/127.0.0.1/3128) && echo TCP-PROXY-OK",
        "kill $p; echo done",
      ].join("\n"),
    );
    assert.equal(b.code, 0, b.stderr);
    assert.doesNotMatch(b.stdout, /TCP-INNER-OK/);
    assert.match(b.stdout, /TCP-PROXY-OK\ndone\n$/);
    assert.match(b.stderr, /connect: Permission denied/);
  });

  it("the proxy port cannot be used to reach the host's loopback services", async () => {
    const r = await exec([...CURL, `http://127.0.0.1:${httpPort}/`]);
    assert.equal(r.code, 22);
    assert.match(r.stdout, /IP address 127\.0\.0\.1 port \d+ is not in the egress allowlist/);
  });
});

describe("network restricted: caps", () => {
  it("a download over the task's byte cap is cut, and the record says why", async () => {
    const r = await exec([
      "curl",
      "-sS",
      "--max-time",
      "10",
      "-o",
      "/dev/null",
      "http://allowed.test/big",
    ]);
    assert.notEqual(r.code, 0);
    const rows = await egressRecords(r.taskId);
    assert.equal(rows[0]?.decision, "allow");
    assert.match(rows[0]?.reasons?.[0] ?? "", /cap of 1048576 bytes was reached/);
    const details = JSON.parse(rows[0]?.detailsJson ?? "{}") as { bytesReceived?: number };
    assert.ok((details.bytesReceived ?? 0) > 0 && (details.bytesReceived ?? 0) <= 1048576 + 65536);
  });

  it("more connections at once than the cap are refused", async () => {
    const script = [
      "for i in 1 2 3 4 5 6 7 8; do",
      "  (curl -sS --max-time 10 http://allowed.test/slow > out.$i 2>&1; echo rc=$? >> out.$i) &",
      "done; wait; cat out.*",
    ].join("\n");
    const r = await sh(script);
    assert.equal(r.code, 0, r.stderr);
    const done = r.stdout.match(/slow done/g)?.length ?? 0;
    const refused = r.stdout.match(/cap of 4 open connections/g)?.length ?? 0;
    assert.ok(done >= 1 && done <= 4, r.stdout);
    assert.equal(done + refused, 8, r.stdout);
    const rows = await egressRecords(r.taskId);
    assert.equal(rows.length, 8);
    assert.equal(rows.filter((row) => row.decision === "deny").length, refused);
  });
});

describe("network restricted over MCP", () => {
  it('run_command accepts network "restricted" and allow_hosts', async () => {
    const client = new Client({ name: "egress-it", version: "1.0.0" });
    await client.connect(
      new StreamableHTTPClientTransport(new URL(`${gw.url}/mcp`), {
        requestInit: { headers: { authorization: `Bearer ${devToken}` } },
      }),
    );
    try {
      const run = (await client.listTools()).tools.find((t) => t.name === "run_command");
      const props = (run?.inputSchema.properties ?? {}) as Record<string, { enum?: string[] }>;
      assert.ok(props.network?.enum?.includes("restricted"));
      assert.ok(props.allow_hosts, "run_command has allow_hosts");
      const r = (await client.callTool({
        name: "run_command",
        arguments: {
          command: "curl",
          args: [...CURL.slice(1), "https://allowed.test/mcp", "http://denied.test/"],
          network: "restricted",
          allow_hosts: ["allowed.test"],
        },
      })) as CallToolResult;
      const s = r.structuredContent as { exit_code: number; stdout: string; task_id: string };
      assert.equal(s.exit_code, 22, JSON.stringify(r));
      assert.match(s.stdout, /hello from allowed\.test \/mcp\n/);
      assert.match(s.stdout, /denied: host denied\.test port 80 is not in the egress allowlist/);
      const rows = await egressRecords(s.task_id);
      assert.deepEqual(rows.map((row) => row.decision).sort(), ["allow", "deny"]);
    } finally {
      await client.close();
    }
  });
});
