/**
 * Writes a CycloneDX 1.5 SBOM (JSON) of what the release tarball ships: every npm package whose
 * files esbuild put into dist/ (read from dist/meta.json), plus the packages shipped as they are
 * (better-sqlite3 and its loader). Versions and licenses come from each package's package.json,
 * hashes from package-lock.json's integrity (the registry tarball's SHA-512).
 *
 * `--deb-admindir <rootfs>/var/lib/dpkg` adds the Debian packages of an image's root filesystem
 * (pkg:deb purls; `--deb-only "a b"` keeps only those, for the distroless edge image), and
 * `--extra-deb name=version` a package copied from the host (node), so one tool writes the SBOM
 * of the tarball and of each image. `--meta /dev/null` leaves the npm components out.
 *
 *   node --import tsx scripts/build/sbom.ts --out dist/release/x.cdx.json [--name n] [--version v]
 *     [--deb-admindir dir] [--shipped pkg]…
 */
import { execFileSync } from "node:child_process";
import { createHash, randomUUID } from "node:crypto";
import { readFileSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { parseArgs } from "node:util";

const ROOT = resolve(import.meta.dirname, "../..");

/** A CycloneDX component (the subset written here). */
export interface Component {
  type: "library" | "application" | "operating-system";
  name: string;
  version: string;
  purl: string;
  "bom-ref": string;
  licenses?: Array<{ expression: string }>;
  hashes?: Array<{ alg: "SHA-512" | "SHA-256"; content: string }>;
}

/** The node_modules package directory of a bundled input path, e.g. node_modules/@scope/pkg. */
export function packageDirOf(inputPath: string): string | undefined {
  const i = inputPath.lastIndexOf("node_modules/");
  if (i < 0) return undefined;
  const rest = inputPath.slice(i + "node_modules/".length).split("/");
  const name = rest[0]?.startsWith("@") ? rest.slice(0, 2).join("/") : rest[0];
  return name ? `${inputPath.slice(0, i)}node_modules/${name}` : undefined;
}

function npmPurl(name: string, version: string): string {
  const encoded = name.startsWith("@") ? `%40${name.slice(1)}` : name;
  return `pkg:npm/${encoded}@${version}`;
}

/** npm components for the given package directories (relative to the repository root). */
export function npmComponents(dirs: Iterable<string>): Component[] {
  const lock = JSON.parse(readFileSync(join(ROOT, "package-lock.json"), "utf8")) as {
    packages: Record<string, { integrity?: string }>;
  };
  const out = new Map<string, Component>();
  for (const dir of dirs) {
    const pkg = JSON.parse(readFileSync(join(ROOT, dir, "package.json"), "utf8")) as {
      name: string;
      version: string;
      license?: string;
    };
    const purl = npmPurl(pkg.name, pkg.version);
    if (out.has(purl)) continue;
    const integrity = lock.packages[dir]?.integrity;
    const c: Component = {
      type: "library",
      name: pkg.name,
      version: pkg.version,
      purl,
      "bom-ref": purl,
      ...(pkg.license ? { licenses: [{ expression: pkg.license }] } : {}),
      ...(integrity?.startsWith("sha512-")
        ? {
            hashes: [
              {
                alg: "SHA-512" as const,
                content: Buffer.from(integrity.slice(7), "base64").toString("hex"),
              },
            ],
          }
        : {}),
    };
    out.set(purl, c);
  }
  return [...out.values()].sort((a, b) => a.purl.localeCompare(b.purl));
}

/** dpkg-query's format: package, version, architecture (its own ${…} fields, not JavaScript's). */
const DPKG_FORMAT = `${["Package", "Version", "Architecture"].map((f) => `\${${f}}`).join("\t")}\n`;

/** Debian packages installed in a root filesystem, from its dpkg database. */
export function debComponents(admindir: string): Component[] {
  const text = execFileSync("dpkg-query", [`--admindir=${admindir}`, "-W", `-f=${DPKG_FORMAT}`], {
    encoding: "utf8",
  });
  return text
    .trim()
    .split("\n")
    .filter(Boolean)
    .map((line) => {
      const [name = "", version = "", arch = ""] = line.split("\t");
      const purl = `pkg:deb/debian/${name}@${encodeURIComponent(version)}?arch=${arch}&distro=bookworm`;
      return { type: "library" as const, name, version, purl, "bom-ref": purl };
    })
    .sort((a, b) => a.purl.localeCompare(b.purl));
}

if (import.meta.filename === process.argv[1]) {
  const { values } = parseArgs({
    options: {
      out: { type: "string" },
      name: { type: "string", default: "mcp-gateway" },
      version: { type: "string" },
      meta: { type: "string", default: join(ROOT, "dist", "meta.json") },
      shipped: { type: "string", multiple: true, default: [] },
      "deb-admindir": { type: "string" },
      /** Only these Debian packages (space-separated) of the admindir: a distroless tree's. */
      "deb-only": { type: "string" },
      /** Debian packages copied in from the host, as name=version. */
      "extra-deb": { type: "string", multiple: true, default: [] },
      "source-date-epoch": { type: "string" },
    },
  });
  if (!values.out) throw new Error("--out is required");
  const version =
    values.version ??
    (JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8")) as { version: string }).version;
  const metaText = readFileSync(values.meta, "utf8");
  const meta = (metaText.trim() ? JSON.parse(metaText) : { inputs: {} }) as {
    inputs: Record<string, unknown>;
  };
  const dirs = new Set<string>();
  for (const input of Object.keys(meta.inputs)) {
    const dir = packageDirOf(input);
    if (dir) dirs.add(dir);
  }
  for (const p of values.shipped) dirs.add(`node_modules/${p}`);
  const only = values["deb-only"] ? new Set(values["deb-only"].split(/\s+/).filter(Boolean)) : null;
  const extra = values["extra-deb"].map((nv): Component => {
    const [name = "", version = ""] = nv.split("=");
    const purl = `pkg:deb/${name}@${encodeURIComponent(version)}`;
    return { type: "library", name, version, purl, "bom-ref": purl };
  });
  const components = [
    ...npmComponents(dirs),
    ...(values["deb-admindir"] ? debComponents(values["deb-admindir"]) : []).filter(
      (c) => !only || only.has(c.name),
    ),
    ...extra,
  ];
  const epoch = Number(values["source-date-epoch"] ?? process.env.SOURCE_DATE_EPOCH ?? 0);
  const timestamp = new Date(epoch > 0 ? epoch * 1000 : Date.now()).toISOString();
  // A stable serial number per content: the same inputs give the same SBOM.
  const digest = createHash("sha256")
    .update(JSON.stringify([values.name, version, components]))
    .digest("hex");
  const serial = `urn:uuid:${digest.slice(0, 8)}-${digest.slice(8, 12)}-5${digest.slice(13, 16)}-a${digest.slice(17, 20)}-${digest.slice(20, 32)}`;
  const bom = {
    bomFormat: "CycloneDX",
    specVersion: "1.5",
    serialNumber: serial || `urn:uuid:${randomUUID()}`,
    version: 1,
    metadata: {
      timestamp,
      tools: { components: [{ type: "application", name: "mcp-gateway scripts/build/sbom.ts" }] },
      component: {
        type: "application",
        name: values.name,
        version,
        "bom-ref": `pkg:generic/${values.name}@${version}`,
        purl: `pkg:generic/${values.name}@${version}`,
      },
    },
    components,
    dependencies: [
      {
        ref: `pkg:generic/${values.name}@${version}`,
        dependsOn: components.map((c) => c["bom-ref"]),
      },
    ],
  };
  writeFileSync(values.out, `${JSON.stringify(bom, null, 2)}\n`);
  process.stderr.write(`sbom: ${components.length} components → ${values.out}\n`);
}
