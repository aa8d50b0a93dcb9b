import { createHash } from "node:crypto";
import { readFile } from "node:fs/promises";
import { readTarGz } from "./tar.js";

/** Thrown when a bundle cannot be used. */
export class BundleError extends Error {
  /** Stable error code. */
  readonly code = "POLICY_BUNDLE_INVALID" as const;
}

/** The parts of an `opa build -t wasm` bundle the engine uses. */
export interface PolicyBundle {
  /** The compiled policy module. */
  wasm: Uint8Array;
  /** The bundle's data document (/data.json), `{}` if absent. */
  data: unknown;
  /** The manifest revision, or "sha256:<hex>" of the tarball when the manifest has none. */
  revision: string;
  /** sha256 of the tarball, hex. */
  sha256: string;
  /** Entrypoints listed in the manifest's wasm section. */
  entrypoints: string[];
}

interface Manifest {
  revision?: unknown;
  wasm?: { entrypoint?: unknown; module?: unknown }[];
}

function parseJson(bytes: Uint8Array, what: string): unknown {
  try {
    return JSON.parse(Buffer.from(bytes).toString("utf8"));
  } catch (cause) {
    throw new BundleError(`${what} is not valid JSON`, { cause });
  }
}

/**
 * Parses a bundle tarball produced by `opa build -t wasm` (see scripts/build-policy.sh).
 *
 * @throws BundleError when it is not a gzip tar, or lacks a policy module.
 */
export function parseBundle(tarball: Uint8Array): PolicyBundle {
  let files: Map<string, Uint8Array>;
  try {
    files = readTarGz(tarball);
  } catch (cause) {
    throw new BundleError("the bundle is not a readable .tar.gz", { cause });
  }
  const sha256 = createHash("sha256").update(tarball).digest("hex");
  const manifestBytes = files.get(".manifest");
  const manifest = (manifestBytes ? parseJson(manifestBytes, ".manifest") : {}) as Manifest;
  const wasmEntries = Array.isArray(manifest.wasm) ? manifest.wasm : [];
  const modulePath =
    typeof wasmEntries[0]?.module === "string" ? wasmEntries[0].module : "/policy.wasm";
  const wasm = files.get(modulePath.replace(/^\/+/, ""));
  if (!wasm) throw new BundleError(`the bundle has no wasm module (${modulePath})`);
  const dataBytes = files.get("data.json");
  const data = dataBytes ? parseJson(dataBytes, "data.json") : {};
  const revision =
    typeof manifest.revision === "string" && manifest.revision !== ""
      ? manifest.revision
      : `sha256:${sha256}`;
  const entrypoints = wasmEntries
    .map((w) => w.entrypoint)
    .filter((e): e is string => typeof e === "string");
  return { wasm, data, revision, sha256, entrypoints };
}

/** Reads and parses a bundle file (see {@link parseBundle}). */
export async function readBundle(path: string): Promise<PolicyBundle> {
  let tarball: Buffer;
  try {
    tarball = await readFile(path);
  } catch (cause) {
    throw new BundleError(`cannot read the policy bundle ${path}`, { cause });
  }
  return parseBundle(tarball);
}
