/**
 * Runs a CommonJS bundle through V8's code cache (the release edge, dist/edge.cjs; ADR 0021).
 *
 * Node 20 has no compile cache for modules (`module.enableCompileCache` is Node ≥ 22.1), so the
 * release edge is one CommonJS file compiled here with `vm.Script` and the `cachedData` the
 * build wrote beside it (`<bundle>.v8cache`): V8 then deserialises the bytecode of every function
 * the build's warm-up start compiled instead of parsing and compiling 2.4 MB of JavaScript.
 *
 * The cache is an optimisation only. V8 checks it against its own version, its flags and the
 * source; a cache it rejects (another Node build, a changed bundle) is ignored and the bundle
 * compiles from source as it would without one — the behaviour never depends on it. It has the
 * bundle's trust: whoever can replace it can replace the bundle next to it.
 *
 * `MCP_GATEWAY_CODE_CACHE=off` ignores the cache (the cold-start benchmark's baseline).
 * `MCP_GATEWAY_WRITE_CODE_CACHE=<file>` writes the cache when the process exits (`npm run build`
 * starts the edge once with it, waits until it is listening and stops it), so the cache holds
 * the functions a real start compiles.
 */
import { readFileSync, writeFileSync } from "node:fs";
import Module, { createRequire } from "node:module";
import { dirname } from "node:path";
import { constants, Script } from "node:vm";

/** What {@link runWithCodeCache} found (the cold-start benchmark reports it). */
export interface CodeCacheStatus {
  /** "used": V8 accepted the cache; "rejected": it did not (another Node build or other V8
   * flags, e.g. from NODE_OPTIONS); "absent": no cache file, or MCP_GATEWAY_CODE_CACHE=off. */
  cache: "used" | "rejected" | "absent";
}

/** Compiles and runs the CommonJS bundle `file`, with `<file>.v8cache` when present. */
export function runWithCodeCache(file: string): CodeCacheStatus {
  // The bundler escapes every non-ASCII character (scripts/build/bundle.ts checks it), so the
  // bundle is read as Latin-1: a one-byte string, without UTF-8 decoding 2.4 MB.
  const source = readFileSync(file, "latin1");
  let cachedData: Buffer | undefined;
  if (process.env.MCP_GATEWAY_CODE_CACHE !== "off") {
    try {
      cachedData = readFileSync(`${file}.v8cache`);
    } catch {
      cachedData = undefined;
    }
  }
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
    cache: !cachedData ? "absent" : script.cachedDataRejected ? "rejected" : "used",
  };
  const out = process.env.MCP_GATEWAY_WRITE_CODE_CACHE;
  if (out) {
    // At exit, not now: by then V8 has compiled the functions a start runs, not only the
    // top level.
    process.once("exit", () => writeFileSync(out, script.createCachedData()));
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
