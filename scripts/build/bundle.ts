/**
 * Bundles the gateway for production into dist/ (`npm run build` calls this after setup):
 *
 *   dist/mcp-gateway.mjs   the CLI (every command; servers load on first use)
 *   dist/runner.mjs        `mcp-gateway runner` without the dispatch
 *   dist/audit-verify-worker.mjs  `audit verify`'s worker threads
 *   dist/chunk-*.mjs       code shared by the three, loaded on demand
 *   dist/edge.cjs          `mcp-gateway edge` without the dispatch: a small loader that runs
 *   dist/edge-main.cjs     the edge as one CommonJS file, through V8's code cache
 *                          (dist/edge-main.cjs.v8cache, written by scripts/build.sh; ADR 0021)
 *
 * Minified, for Node 20, no tsx at run time. Every npm dependency is bundled except
 * better-sqlite3 (a native addon, shipped as is in the release tarball's node_modules).
 *
 * Source files that locate things next to themselves (`import.meta.url`, `import.meta.dirname`:
 * the seccomp helper under runner/native, the policy bundle under policies/build) keep working:
 * in each such file the build replaces `import.meta.url` with the URL the file would have in the
 * same layout (`new URL("../<path in repo>", import.meta.url)` of the chunk in dist/), so the
 * release tarball mirrors the repository's layout for those files (runner/native/build,
 * runner/native/etc, policies/build) and no path logic changes between development and release.
 *
 *   node --import tsx scripts/build/bundle.ts [--outdir dist] [--no-minify]
 */
import { readFile, rm, writeFile } from "node:fs/promises";
import { dirname, join, relative, resolve } from "node:path";
import { parseArgs } from "node:util";
import { type BuildOptions, build, type Plugin } from "esbuild";
import { GATEWAY_TOOLS, toolDefinitions } from "../../edge/src/mcp/tools.js";

const ROOT = resolve(import.meta.dirname, "../..");

/** The bundle entries: output name → source. */
export const ENTRIES: Readonly<Record<string, string>> = {
  "mcp-gateway": "cli/src/entry/cli.ts",
  runner: "cli/src/entry/runner.ts",
  // `audit verify`'s worker threads (edge/src/audit/verify-pool.ts).
  "audit-verify-worker": "edge/src/audit/verify-worker.ts",
};

/**
 * The edge, bundled apart as CommonJS: V8's code cache (`vm.Script` `cachedData`) takes one
 * classic script, not ES modules, on Node 20. Output name → source.
 */
export const EDGE: Readonly<Record<string, string>> = {
  // The whole edge in one file, compiled by the loader below (no shebang: it is wrapped).
  "edge-main": "cli/src/entry/edge.ts",
  // The loader (`node dist/edge.cjs`): Node's built-in modules only.
  edge: "cli/src/entry/edge-start.ts",
};

/** Dependencies left out of the bundle: native addons and optional ones never installed. */
export const EXTERNAL: readonly string[] = [
  // Native addon: loaded from node_modules (shipped in the tarball).
  "better-sqlite3",
  // pg's optional native binding and its Cloudflare socket shim: not used, not installed.
  "pg-native",
  "cloudflare:sockets",
];

/**
 * Defines `require`, `__filename` and `__dirname` in each output file: bundled CommonJS
 * dependencies call `require("node:…")` and read `__dirname`, which ESM does not provide.
 */
const BANNER = [
  "#!/usr/bin/env node",
  'import { createRequire as __mcpgCreateRequire } from "node:module";',
  'import { fileURLToPath as __mcpgFileURLToPath } from "node:url";',
  'import { dirname as __mcpgDirname } from "node:path";',
  "const require = __mcpgCreateRequire(import.meta.url);",
  "const __filename = __mcpgFileURLToPath(import.meta.url);",
  "const __dirname = __mcpgDirname(__filename);",
].join("\n");

/**
 * Rewrites `import.meta.url`/`dirname`/`filename` in the repository's own sources to the
 * location the source file has relative to dist/ (see the header).
 */
function sourceLocation(outdir: string): Plugin {
  return {
    name: "mcp-gateway-source-location",
    setup(b) {
      b.onLoad({ filter: /\.ts$/ }, async (args) => {
        if (args.path.includes(`${"/"}node_modules${"/"}`)) return undefined;
        const text = await readFile(args.path, "utf8");
        if (!text.includes("import.meta.")) return { contents: text, loader: "ts" };
        const fromDist = relative(outdir, args.path).split("\\").join("/");
        const dirFromDist = relative(outdir, dirname(args.path)).split("\\").join("/");
        const url = `new URL(${JSON.stringify(fromDist)}, import.meta.url).href`;
        const file = `__mcpgFileURLToPath(new URL(${JSON.stringify(fromDist)}, import.meta.url))`;
        const dir = `__mcpgFileURLToPath(new URL(${JSON.stringify(dirFromDist)}, import.meta.url))`;
        const contents = text
          .replaceAll("import.meta.url", url)
          .replaceAll("import.meta.filename", file)
          .replaceAll("import.meta.dirname", dir);
        return { contents, loader: "ts" };
      });
    },
  };
}

/** Options of {@link bundle}. */
export interface BundleOptions {
  /** Output directory; default <repo>/dist. The layout around it must mirror the repository. */
  outdir?: string;
  /** Minify (default true). */
  minify?: boolean;
}

/** Builds the bundles; resolves to the files written (relative to outdir). */
export async function bundle(options: BundleOptions = {}): Promise<string[]> {
  const outdir = resolve(options.outdir ?? join(ROOT, "dist"));
  await rm(outdir, { recursive: true, force: true });
  const common = {
    absWorkingDir: ROOT,
    bundle: true,
    platform: "node",
    target: "node20",
    minify: options.minify ?? true,
    sourcemap: "linked",
    legalComments: "linked",
    external: [...EXTERNAL],
    plugins: [sourceLocation(outdir)],
    // verify-pool.ts starts its workers from the bundle's entry, located relative to the
    // source path its import.meta.url is rewritten to (see sourceLocation).
    define: {
      // The gateway's own MCP tool definitions: constants of the build (edge/src/mcp/tools.ts).
      __MCPG_GATEWAY_TOOL_DEFINITIONS__: JSON.stringify(
        JSON.stringify([...toolDefinitions(GATEWAY_TOOLS).values()]),
      ),
      __MCPG_AUDIT_VERIFY_WORKER__: JSON.stringify(
        relative(join(ROOT, "edge", "src", "audit"), join(outdir, "audit-verify-worker.mjs"))
          .split("\\")
          .join("/"),
      ),
    },
    metafile: true,
    logLevel: "warning",
  } satisfies BuildOptions;
  const result = await build({
    ...common,
    entryPoints: Object.entries(ENTRIES).map(([out, src]) => ({ out, in: src })),
    outdir,
    outExtension: { ".js": ".mjs" },
    chunkNames: "chunk-[hash]",
    splitting: true,
    format: "esm",
    banner: { js: BANNER },
  });
  const edge = await build({
    ...common,
    entryPoints: Object.entries(EDGE).map(([out, src]) => ({ out, in: src })),
    outdir,
    outExtension: { ".js": ".cjs" },
    format: "cjs",
    // `import.meta` does not exist in CommonJS: the sources' (rewritten by sourceLocation) read
    // the bundle file's URL instead.
    banner: {
      js: [
        // ES modules are strict; the CommonJS bundle of them must be too.
        '"use strict";',
        'var __mcpgFileURLToPath = require("node:url").fileURLToPath;',
        'var __mcpgImportMetaUrl = require("node:url").pathToFileURL(__filename).href;',
      ].join("\n"),
    },
    define: { ...common.define, "import.meta.url": "__mcpgImportMetaUrl" },
    // The one `import.meta.resolve` (verify-pool.ts) is on the development path, which the
    // define above makes dead code in a bundle.
    logOverride: { "empty-import-meta": "silent" },
  });
  // The loader reads the bundle as Latin-1 (cli/src/entry/code-cache.ts): it must be ASCII, as
  // esbuild's default charset makes it.
  const main = await readFile(join(outdir, "edge-main.cjs"));
  const nonAscii = main.findIndex((byte) => byte > 0x7f);
  if (nonAscii >= 0) throw new Error(`edge-main.cjs has a non-ASCII byte at offset ${nonAscii}`);
  // The warning about an empty `import.meta` is silenced above for the one known, dead use; any
  // other (a dependency's `import.meta.dirname`, say) would be undefined in the release edge.
  if (main.includes("import_meta")) {
    throw new Error("edge-main.cjs reads an empty import.meta: see the edge build in bundle.ts");
  }
  // The loader is the entry point: executable, with a shebang.
  const loader = join(outdir, "edge.cjs");
  await writeFile(loader, `#!/usr/bin/env node\n${await readFile(loader, "utf8")}`);
  const outputs = { ...result.metafile.outputs, ...edge.metafile.outputs };
  await writeFile(
    join(outdir, "meta.json"),
    JSON.stringify({ inputs: { ...result.metafile.inputs, ...edge.metafile.inputs }, outputs }),
  );
  return Object.keys(outputs).map((f) => relative(outdir, resolve(ROOT, f)));
}

if (import.meta.filename === process.argv[1]) {
  const { values } = parseArgs({
    options: { outdir: { type: "string" }, "no-minify": { type: "boolean" } },
  });
  const files = await bundle({
    ...(values.outdir ? { outdir: values.outdir } : {}),
    minify: !values["no-minify"],
  });
  process.stderr.write(`bundle: wrote ${files.filter((f) => /\.[cm]js$/.test(f)).length} files\n`);
}
