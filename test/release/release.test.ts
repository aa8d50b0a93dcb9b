/**
 * The release tarball made by `npm run build` (scripts/test.sh builds it before this suite):
 * checksums, contents, SBOM, and the gateway running from an extracted copy with nothing but
 * Node — no repository, no node_modules beyond what the tarball ships, no tsx.
 */
import assert from "node:assert/strict";
import { type ChildProcess, execFileSync, spawn, spawnSync } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { arch, tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { after, before, describe, it } from "node:test";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { GATEWAY_TOOLS, toolDefinitions } from "../../edge/src/mcp/tools.js";

const ROOT = resolve(import.meta.dirname, "..", "..");
const VERSION = (
  JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8")) as { version: string }
).version;
const NAME = `mcp-gateway-${VERSION}-linux-${arch()}`;
const OUT = join(ROOT, "dist", "release");
const TARBALL = join(OUT, `${NAME}.tar.gz`);

let dir: string;
let home: string;
const procs: ChildProcess[] = [];

before(() => {
  assert.ok(existsSync(TARBALL), `${TARBALL} is missing: run npm run build`);
  dir = mkdtempSync(join(tmpdir(), "mcp-release-"));
  chmodSync(dir, 0o711);
  execFileSync("tar", ["-xzf", TARBALL, "-C", dir]);
  home = join(dir, NAME);
});
after(async () => {
  for (const p of procs) {
    if (p.exitCode === null && p.signalCode === null) {
      const exited = new Promise((r) => p.once("exit", r));
      p.kill("SIGTERM");
      await exited;
    }
  }
  rmSync(dir, { recursive: true, force: true });
});

/** Runs a command of the extracted release from / with a bare environment. */
function run(args: string[], env: Record<string, string> = {}): string {
  return execFileSync(process.execPath, args, {
    cwd: "/",
    env: { PATH: "/usr/bin:/bin", ...env },
    encoding: "utf8",
  });
}

function startUntil(args: string[], ready: RegExp, env: Record<string, string>) {
  return new Promise<RegExpMatchArray>((resolvePromise, reject) => {
    const child = spawn(process.execPath, args, {
      cwd: "/",
      env: { PATH: "/usr/bin:/bin", ...env },
      stdio: ["ignore", "ignore", "pipe"],
    });
    procs.push(child);
    let err = "";
    child.stderr?.on("data", (d: Buffer) => {
      err += d.toString();
      const m = err.match(ready);
      if (m) resolvePromise(m);
    });
    child.on("exit", (code) => reject(new Error(`${args[0]} exited ${code}:\n${err}`)));
  });
}

describe(`release tarball ${NAME}`, () => {
  it("SHA256SUMS matches the tarball and its SBOM", () => {
    const sums = readFileSync(join(OUT, "SHA256SUMS"), "utf8").trim().split("\n");
    assert.equal(sums.length, 2);
    for (const line of sums) {
      const [sum, file] = line.split(/\s+/);
      const actual = createHash("sha256")
        .update(readFileSync(join(OUT, file as string)))
        .digest("hex");
      assert.equal(actual, sum, file);
    }
  });

  it("holds the bundles, the native helper, the policy bundle and the one native addon — no tsx", () => {
    const list = execFileSync("tar", ["-tzf", TARBALL], { encoding: "utf8" }).split("\n");
    for (const f of [
      "dist/mcp-gateway.mjs",
      "dist/edge.cjs",
      "dist/edge-main.cjs",
      "dist/edge-main.cjs.v8cache",
      "dist/runner.mjs",
      "dist/audit-verify-worker.mjs",
      "runner/native/build/mcpg-sandbox-helper",
      "runner/native/build/mcpg-sandbox-init",
      "policies/build/bundle.tar.gz",
      "node_modules/better-sqlite3/build/Release/better_sqlite3.node",
      "sbom.cdx.json",
    ]) {
      assert.ok(list.includes(`${NAME}/${f}`), `${f} is in the tarball`);
    }
    assert.equal(
      list.filter((f) => /node_modules\/(tsx|esbuild|typescript)\//.test(f)).length,
      0,
      "no build tools in the release",
    );
    const modules = new Set(
      list.map((f) => f.split("/node_modules/")[1]?.split("/")[0]).filter(Boolean),
    );
    assert.deepEqual([...modules].sort(), ["better-sqlite3", "bindings", "file-uri-to-path"]);
  });

  it("its CycloneDX SBOM lists what was bundled, with versions, purls and hashes", () => {
    const bom = JSON.parse(readFileSync(join(home, "sbom.cdx.json"), "utf8")) as {
      bomFormat: string;
      specVersion: string;
      components: Array<{ name: string; version: string; purl: string; hashes?: unknown[] }>;
    };
    assert.equal(bom.bomFormat, "CycloneDX");
    assert.equal(bom.specVersion, "1.5");
    const byName = new Map(bom.components.map((c) => [c.name, c]));
    for (const name of ["better-sqlite3", "zod", "@connectrpc/connect", "hono", "jose"]) {
      const c = byName.get(name);
      assert.ok(c, `${name} is in the SBOM`);
      assert.match(c.purl, /^pkg:npm\//);
      assert.ok((c.hashes ?? []).length > 0, `${name} has a hash`);
    }
    assert.equal(byName.has("tsx"), false, "build tools are not in the SBOM");
  });

  it("the CLI answers --help from the extracted tree with nothing but node", () => {
    const help = run([join(home, "dist", "mcp-gateway.mjs"), "--help"]);
    assert.match(help, /^mcp-gateway — security gateway/);
  });

  it("audit verify checks a long chain on worker threads from the extracted tree", async () => {
    // 10,000 records (past the 8,192 after which workers start), written as the edge does.
    const { auditKeyFromSecret } = await import("../../edge/src/audit/keys.js");
    const { fillSqliteAuditChain, sampleAuditEntry } = await import(
      "../../edge/src/store/contract.js"
    );
    const { default: Database } = await import("better-sqlite3");
    const dataDir = join(dir, "audit-data");
    const secret = randomBytes(32);
    const dbPath = join(dataDir, "gateway.db");
    fillSqliteAuditChain(dbPath, 10_000, auditKeyFromSecret(secret), (i) =>
      sampleAuditEntry({ time: 1e12 + i }),
    );
    const keyFile = join(dataDir, "audit-verify.key");
    writeFileSync(keyFile, `${secret.toString("base64")}\n`, { mode: 0o600 });
    const verify = () =>
      spawnSync(
        process.execPath,
        [
          join(home, "dist", "mcp-gateway.mjs"),
          "audit",
          "verify",
          "--data-dir",
          dataDir,
          "--audit-key-file",
          keyFile,
        ],
        { cwd: "/", env: { PATH: "/usr/bin:/bin" }, encoding: "utf8" },
      );
    const intact = verify();
    assert.equal(intact.status, 0, intact.stderr);
    assert.match(intact.stdout, /audit chain intact: 10000 records/);
    const db = new Database(dbPath);
    db.prepare("UPDATE audit SET body = replace(body, 'allow', 'deny') WHERE seq = 9500").run();
    db.close();
    const tampered = verify();
    assert.equal(tampered.status, 1, tampered.stderr);
    assert.match(tampered.stdout, /BROKEN at record 9500: hash does not match/);
  });

  it("edge and runner from the extracted tree run a command end to end (SQLite, dev PKI)", async () => {
    const dataDir = join(dir, "data");
    const env = { MCP_GATEWAY_DATA_DIR: dataDir };
    const runner = await startUntil(
      [join(home, "dist", "runner.mjs"), "--port", "0", "--id", "runner-local"],
      /listening on (https:\/\/\S+)/,
      env,
    );
    const edge = await startUntil(
      [join(home, "dist", "edge.cjs"), "--port", "0", "--runner", `runner-local=${runner[1]}`],
      /code cache: (\w+)[\s\S]*edge listening on (http:\/\/[^\s(]+)/,
      { ...env, MCP_GATEWAY_CODE_CACHE_STATUS: "1" },
    );
    // The build's code cache is valid for this Node (the one that built the release).
    assert.equal(edge[1], "used");
    const url = edge[2] as string;
    const token = run(
      [join(home, "dist", "mcp-gateway.mjs"), "token", "--sub", "release", "--roles", "developer"],
      env,
    ).trim();
    const out = run(
      [join(home, "dist", "mcp-gateway.mjs"), "exec", "--url", url, "--", "echo", "from release"],
      { ...env, MCP_GATEWAY_TOKEN: token },
    );
    assert.equal(out, "from release\n");

    // The gateway's own MCP tools, whose definitions the build computed and embedded: the same
    // as the sources compute them.
    const mcp = new Client({ name: "release-test", version: VERSION });
    await mcp.connect(
      new StreamableHTTPClientTransport(new URL(`${url}/mcp`), {
        requestInit: { headers: { authorization: `Bearer ${token}` } },
      }),
    );
    try {
      const { tools } = await mcp.listTools();
      const expected = toolDefinitions(GATEWAY_TOOLS);
      // A developer may use every gateway tool (policies/data/roles.json): all are listed.
      assert.deepEqual(tools.map((t) => t.name).sort(), GATEWAY_TOOLS.map((t) => t.name).sort());
      for (const t of tools) {
        const { name, title, description, inputSchema, outputSchema, annotations } = t;
        assert.deepEqual(
          { name, title, description, inputSchema, outputSchema, annotations },
          expected.get(t.name),
        );
      }
    } finally {
      await mcp.close();
    }
  });

  it("an edge stopped as soon as it says it is listening shuts down gracefully", async () => {
    // A supervisor may send SIGTERM the moment it reads the line: the handler must be in place
    // by then (it was not: SIGTERM's default killed the edge in 5 of 6 tries, its log unflushed).
    for (let i = 0; i < 3; i++) {
      const child = spawn(process.execPath, [join(home, "dist", "edge.cjs"), "--port", "0"], {
        cwd: "/",
        env: { PATH: "/usr/bin:/bin", MCP_GATEWAY_DATA_DIR: join(dir, "data-sigterm") },
        stdio: ["ignore", "pipe", "pipe"],
      });
      procs.push(child);
      let out = "";
      let sent = false;
      const onData = (d: Buffer) => {
        out += d.toString();
        if (!sent && /^edge listening on /m.test(out)) {
          sent = true;
          child.kill("SIGTERM");
        }
      };
      child.stdout.on("data", onData);
      child.stderr.on("data", onData);
      const [code, signal] = await new Promise<[number | null, string | null]>((r) =>
        child.once("exit", (c, s) => r([c, s])),
      );
      assert.deepEqual({ code, signal }, { code: 0, signal: null }, out);
      assert.match(out, /"msg":"shutting down"/);
    }
  });
});
