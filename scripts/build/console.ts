/**
 * Builds the web console (console/src) into console/dist, which the edge serves at /console:
 *
 *   console/dist/index.html                 from console/index.html, naming the assets below
 *   console/dist/assets/main-<hash>.js      one ES module: the app, @mcp-gateway/client/web,
 *                                           connect-web and the generated stubs (minified)
 *   console/dist/assets/main-<hash>.css     the one stylesheet
 *   console/dist/build.json                 the asset names and their sizes (raw and gzip)
 *
 * Content hashes in the names let the edge cache assets for a year (immutable) while
 * index.html is revalidated. setup runs this (so `npm start`, the tests and the release build
 * always have a current console); it takes about a second.
 *
 *   node --import tsx scripts/build/console.ts [--outdir console/dist]
 */
import { mkdir, readFile, rm, writeFile } from "node:fs/promises";
import { basename, join, resolve } from "node:path";
import { parseArgs } from "node:util";
import { gzipSync } from "node:zlib";
import { build } from "esbuild";

const ROOT = resolve(import.meta.dirname, "../..");

/** What {@link buildConsole} wrote. */
export interface ConsoleBuild {
  /** Output directory. */
  outdir: string;
  /** Asset file names (under assets/) with their sizes in bytes. */
  assets: Array<{ name: string; bytes: number; gzipBytes: number }>;
}

/** Builds the console into `outdir` (default <repo>/console/dist), replacing what was there. */
export async function buildConsole(outdir = join(ROOT, "console", "dist")): Promise<ConsoleBuild> {
  const out = resolve(outdir);
  await rm(out, { recursive: true, force: true });
  await mkdir(join(out, "assets"), { recursive: true });
  const result = await build({
    absWorkingDir: ROOT,
    entryPoints: [join(ROOT, "console", "src", "main.ts")],
    outdir: join(out, "assets"),
    entryNames: "[name]-[hash]",
    bundle: true,
    format: "esm",
    platform: "browser",
    target: ["es2022", "chrome111", "firefox113", "safari16"],
    minify: true,
    sourcemap: false,
    legalComments: "none",
    tsconfig: join(ROOT, "console", "tsconfig.json"),
    metafile: true,
    logLevel: "warning",
  });
  const files = Object.keys(result.metafile.outputs).map((f) => resolve(ROOT, f));
  const js = files.find((f) => f.endsWith(".js"));
  const css = files.find((f) => f.endsWith(".css"));
  if (!js || !css)
    throw new Error(`console build: expected one .js and one .css, got ${files.join(", ")}`);
  const template = await readFile(join(ROOT, "console", "index.html"), "utf8");
  const html = template
    .replace("%APP_JS%", `/console/assets/${basename(js)}`)
    .replace("%APP_CSS%", `/console/assets/${basename(css)}`);
  if (html.includes("%APP_")) throw new Error("console/index.html: unreplaced placeholder");
  await writeFile(join(out, "index.html"), html);
  const assets = await Promise.all(
    [js, css].map(async (f) => {
      const body = await readFile(f);
      return {
        name: basename(f),
        bytes: body.length,
        gzipBytes: gzipSync(body, { level: 9 }).length,
      };
    }),
  );
  await writeFile(join(out, "build.json"), `${JSON.stringify({ assets }, null, 2)}\n`);
  return { outdir: out, assets };
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const { values } = parseArgs({ options: { outdir: { type: "string" } } });
  const built = await buildConsole(values.outdir);
  for (const a of built.assets) {
    process.stderr.write(
      `console: ${a.name} ${(a.bytes / 1024).toFixed(1)} KiB (${(a.gzipBytes / 1024).toFixed(1)} KiB gzip)\n`,
    );
  }
}
