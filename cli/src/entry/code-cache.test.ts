import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";

const dir = mkdtempSync(join(tmpdir(), "mcp-code-cache-"));
after(() => rmSync(dir, { recursive: true, force: true }));
const bundle = join(dir, "bundle.cjs");
const cache = `${bundle}.v8cache`;
const loader = join(dir, "load.mjs");
writeFileSync(
  loader,
  `import { runWithCodeCache } from ${JSON.stringify(join(import.meta.dirname, "code-cache.ts"))};\n` +
    "const s = runWithCodeCache(process.argv[2]);\nprocess.stderr.write('status ' + s.cache + '\\n');\n",
);

/** Runs the bundle through the loader in a fresh Node: what it printed and the cache status. */
function run(env: Record<string, string> = {}): { out: string; status: string } {
  const r = spawnSync(process.execPath, ["--import", "tsx", loader, bundle], {
    env: { ...process.env, ...env },
    encoding: "utf8",
  });
  assert.equal(r.status, 0, r.stderr);
  return { out: r.stdout, status: /status (\w+)/.exec(r.stderr)?.[1] ?? "" };
}

describe("runWithCodeCache", () => {
  it("runs a CommonJS bundle from its cache, and never from a cache of another bundle", () => {
    const source = (word: string) =>
      `"use strict";\nconst f = (w) => w.toUpperCase();\nprocess.stdout.write(f("${word}") + " " + typeof require("node:path").join + " " + (this === module.exports) + "\\n");\n`;
    writeFileSync(bundle, source("alpha"));
    assert.deepEqual(run(), { out: "ALPHA function true\n", status: "absent" });
    assert.equal(run({ MCP_GATEWAY_WRITE_CODE_CACHE: cache }).out, "ALPHA function true\n");
    // The cache file starts with the SHA-256 of the bundle it was made from.
    const digest = createHash("sha256").update(readFileSync(bundle)).digest();
    assert.ok(readFileSync(cache).subarray(0, 32).equals(digest));
    assert.deepEqual(run(), { out: "ALPHA function true\n", status: "used" });
    assert.equal(run({ MCP_GATEWAY_CODE_CACHE: "off" }).status, "absent");
    // Same length, other code: V8 alone would take the old bytecode (its source check is the
    // length); the digest makes the loader compile the new source.
    writeFileSync(bundle, source("omega"));
    assert.deepEqual(run(), { out: "OMEGA function true\n", status: "stale" });
  });
});
