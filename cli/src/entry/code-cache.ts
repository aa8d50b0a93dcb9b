/**
 * Runs a CommonJS bundle through V8's code cache (the release edge, dist/edge.cjs; ADR 0021).
 *
 * Node 20 has no compile cache for modules (`module.enableCompileCache` is Node ≥ 22.1), so the
 * release edge is one CommonJS file compiled here with `vm.Script` and the `cachedData` the
 * build wrote beside it (`<bundle>.v8cache`): V8 then deserialises the bytecode of every function
 * the build's warm-up start compiled instead of parsing and compiling 2.4 MB of JavaScript.
 *
 * The cache is an optimisation only. The file starts with the SHA-256 of the bundle it was made
 * from (V8's own source check compares lengths only); V8 checks the rest against its version
 * and flags. A cache made from another bundle, or one V8 rejects (another Node build), is
 * ignored and the bundle compiles from source as it would without one — the behaviour never
 * depends on it. It has the bundle's trust: whoever can replace it can replace the bundle.
 *
 * `MCP_GATEWAY_CODE_CACHE=off` ignores the cache (the cold-start benchmark's baseline).
 * `MCP_GATEWAY_WRITE_CODE_CACHE=<file>` writes the cache when the process exits (`npm run build`
 * starts the edge once with it, waits until it is listening and stops it), so the cache holds
 * the functions a real start compiles.
 */
import { createHash } from "node:crypto";
import { readFileSync, writeFileSync } from "node:fs";
import Module, { createRequire } from "node:module";
import { dirname } from "node:path";
import { constants, Script } from "node:vm";

/** Bytes of the SHA-256 of the bundle that head the cache file. */
const DIGEST_BYTES = 32;

/** What {@link runWithCodeCache} found (the cold-start benchmark reports it). */
export interface CodeCacheStatus {
  /**
   * "used": V8 accepted the cache; "rejected": V8 did not (another Node build, or other V8
   * flags, e.g. from NODE_OPTIONS); "stale": the cache was made from another bundle;
   * "absent": no cache file, or MCP_GATEWAY_CODE_CACHE=off.
   */
  cache: "used" | "rejected" | "stale" | "absent";
}

/** Compiles and runs the CommonJS bundle `file`, with `<file>.v8cache` when present. */
export function runWithCodeCache(file: string): CodeCacheStatus {
  const bytes = readFileSync(file);
  // The bundler escapes every non-ASCII character (scripts/build/bundle.ts checks it), so the
  // bundle is read as Latin-1: a one-byte string, without UTF-8 decoding 2.4 MB.
  const source = bytes.toString("latin1");
  let hashed: Buffer | undefined;
  const digest = () => {
    hashed ??= createHash("sha256").update(bytes).digest();
    return hashed;
  };
  let stored: Buffer | undefined;
  if (process.env.MCP_GATEWAY_CODE_CACHE !== "off") {
    try {
      stored = readFileSync(`${file}.v8cache`);
    } catch {
      stored = undefined;
    }
  }
  // V8's own check of the source is its length only: the file starts with the SHA-256 of the
  // bundle it was made from, so an edited bundle of the same length never runs stale bytecode
  // (hashing 2.4 MB takes ~2 ms).
  const cachedData =
    stored && stored.length > DIGEST_BYTES && digest().equals(stored.subarray(0, DIGEST_BYTES))
      ? stored.subarray(DIGEST_BYTES)
      : undefined;
  const stale = stored !== undefined && cachedData === undefined;
  // The same wrapper Node's CommonJS loader puts around a module.
  const script = new Script(
    `(function (exports, require, module, __filename, __dirname) { ${source}\n})`,
    {
      filename: file,
      ...(cachedData ? { cachedData } : {}),
      // import() of Node's built-in modules (left as import() by the bundler) resolves as in
      // any module of the main context.
      importModuleDynamically: constants.USE_MAIN_CONTEXT_DEFAULT_LOADER,
    },
  );
  const status: CodeCacheStatus = {
    cache: stale
      ? "stale"
      : !cachedData
        ? "absent"
        : script.cachedDataRejected
          ? "rejected"
          : "used",
  };
  const out = process.env.MCP_GATEWAY_WRITE_CODE_CACHE;
  if (out) {
    // At exit, not now: by then V8 has compiled the functions a start runs, not only the
    // top level.
    const head = digest();
    process.once("exit", () =>
      writeFileSync(out, Buffer.concat([head, script.createCachedData()])),
    );
  }
  const mod = new Module(file);
  mod.filename = file;
  mod.loaded = true;
  const require = createRequire(file);
  const run = script.runInThisContext() as (
    exports: unknown,
    require: NodeJS.Require,
    module: Module,
    filename: string,
    dirname: string,
  ) => void;
  run.call(mod.exports, mod.exports, require, mod, file, dirname(file));
  return status;
}
