import assert from "node:assert/strict";
import { chmodSync, mkdirSync, mkdtempSync, rmSync, statSync, symlinkSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { letSandboxTraverseDataDir } from "./runner.js";

const base = mkdtempSync(join(tmpdir(), "mcp-runner-datadir-"));
after(() => rmSync(base, { recursive: true, force: true }));

const mode = (p: string) => statSync(p).mode & 0o7777;

function dataDir(name: string, m: number): string {
  const d = join(base, name);
  mkdirSync(join(d, "auth"), { recursive: true });
  chmodSync(d, m);
  return d;
}

describe("letSandboxTraverseDataDir", () => {
  it("adds only the search bit for others to a 0700 data directory holding the workspaces", () => {
    // As `mcp-gateway token` leaves it before the first runner start.
    const d = dataDir("first", 0o700);
    assert.equal(letSandboxTraverseDataDir(d, join(d, "workspaces")), true);
    assert.equal(mode(d), 0o701);
    assert.equal(letSandboxTraverseDataDir(d, join(d, "workspaces")), false, "idempotent");
  });

  it("leaves the data directory alone when the workspaces are elsewhere", () => {
    const d = dataDir("elsewhere", 0o700);
    assert.equal(letSandboxTraverseDataDir(d, join(base, "elsewhere-workspaces")), false);
    assert.equal(letSandboxTraverseDataDir(d, d), false);
    assert.equal(letSandboxTraverseDataDir(d, join(d, "..", "first")), false);
    assert.equal(mode(d), 0o700);
  });

  it("leaves alone a symlink, another mode, and a directory the gateway did not make", () => {
    const real = dataDir("real", 0o700);
    const link = join(base, "link");
    symlinkSync(real, link);
    assert.equal(letSandboxTraverseDataDir(link, join(link, "workspaces")), false);
    assert.equal(mode(real), 0o700);
    const group = dataDir("group", 0o750);
    assert.equal(letSandboxTraverseDataDir(group, join(group, "workspaces")), false);
    assert.equal(mode(group), 0o750);
    // Pointed at a directory such as /root: nothing of the gateway's is in it.
    const foreign = join(base, "foreign");
    mkdirSync(foreign, { mode: 0o700 });
    assert.equal(letSandboxTraverseDataDir(foreign, join(foreign, "workspaces")), false);
    assert.equal(mode(foreign), 0o700);
  });
});
