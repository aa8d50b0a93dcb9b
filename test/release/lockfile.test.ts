/**
 * package-lock.json stays complete for every platform, so `npm ci` (scripts/setup.sh) works on
 * a fresh clone on any machine and never rewrites the lock: every optional dependency a locked
 * package declares (esbuild's, biome's and buf's per-platform binaries) has its own locked entry
 * with a version and an integrity hash, whether or not this host installs it.
 */
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { describe, it } from "node:test";

const ROOT = resolve(import.meta.dirname, "..", "..");

interface LockEntry {
  version?: string;
  integrity?: string;
  link?: boolean;
  optionalDependencies?: Record<string, string>;
}

const lock = JSON.parse(readFileSync(join(ROOT, "package-lock.json"), "utf8")) as {
  lockfileVersion: number;
  packages: Record<string, LockEntry>;
};

describe("package-lock.json", () => {
  it("is lockfile version 3", () => {
    assert.equal(lock.lockfileVersion, 3);
  });

  it("locks every platform's optional binaries, not only this host's", () => {
    const missing: string[] = [];
    let checked = 0;
    for (const [path, entry] of Object.entries(lock.packages)) {
      for (const name of Object.keys(entry.optionalDependencies ?? {})) {
        const nested = `${path}/node_modules/${name}`;
        const locked = lock.packages[nested] ?? lock.packages[`node_modules/${name}`];
        checked++;
        if (!locked?.version || !locked.integrity) missing.push(`${path} → ${name}`);
      }
    }
    assert.ok(
      checked >= 30,
      `expected the platform binaries of esbuild, biome and buf (${checked})`,
    );
    assert.deepEqual(missing, []);
  });

  it("has an integrity hash for every registry package", () => {
    const without = Object.entries(lock.packages)
      .filter(([path, e]) => path.includes("node_modules/") && !e.link && !e.integrity)
      .map(([path]) => path);
    assert.deepEqual(without, []);
  });
});
