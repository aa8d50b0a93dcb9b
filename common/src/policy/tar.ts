import { gunzipSync } from "node:zlib";

/** Thrown when a tar archive is malformed or too large. */
export class TarError extends Error {
  /** Stable error code. */
  readonly code = "TAR_INVALID" as const;
}

/** Options for {@link readTar} and {@link readTarGz}. */
export interface ReadTarOptions {
  /** Largest total size of the (uncompressed) archive in bytes. Default 256 MiB. */
  maxBytes?: number;
}

const BLOCK = 512;
const DEFAULT_MAX_BYTES = 256 * 1024 * 1024;

function cString(buf: Uint8Array, start: number, length: number): string {
  const field = buf.subarray(start, start + length);
  const nul = field.indexOf(0);
  return Buffer.from(nul === -1 ? field : field.subarray(0, nul)).toString("utf8");
}

function octal(buf: Uint8Array, start: number, length: number): number {
  const text = cString(buf, start, length).trim();
  if (text === "") return 0;
  if (!/^[0-7]+$/.test(text)) throw new TarError(`invalid octal field "${text}"`);
  return Number.parseInt(text, 8);
}

function verifyChecksum(header: Uint8Array, offset: number): void {
  const stored = octal(header, 148, 8);
  let sum = 0;
  for (let i = 0; i < BLOCK; i++) {
    // The checksum field itself counts as eight spaces.
    sum += i >= 148 && i < 156 ? 0x20 : (header[i] ?? 0);
  }
  if (sum !== stored) throw new TarError(`bad header checksum at offset ${offset}`);
}

/** Parses the "path" record of a PAX extended header, if any. */
function paxPath(body: Uint8Array): string | undefined {
  const text = Buffer.from(body).toString("utf8");
  let pos = 0;
  while (pos < text.length) {
    const space = text.indexOf(" ", pos);
    if (space === -1) break;
    const len = Number.parseInt(text.slice(pos, space), 10);
    if (!Number.isSafeInteger(len) || len <= 0) break;
    const record = text.slice(space + 1, pos + len - 1);
    const eq = record.indexOf("=");
    if (eq !== -1 && record.slice(0, eq) === "path") return record.slice(eq + 1);
    pos += len;
  }
  return undefined;
}

function normalizeName(name: string): string {
  return name.replace(/^(\.\/|\/)+/, "");
}

/**
 * Reads the regular files of an uncompressed tar archive (ustar, with GNU long
 * names and PAX "path" records). Names lose any leading "/" or "./".
 *
 * @throws TarError on a truncated archive, a bad checksum or an archive over maxBytes.
 */
export function readTar(
  archive: Uint8Array,
  options: ReadTarOptions = {},
): Map<string, Uint8Array> {
  const maxBytes = options.maxBytes ?? DEFAULT_MAX_BYTES;
  if (archive.byteLength > maxBytes) throw new TarError("archive is larger than allowed");
  const files = new Map<string, Uint8Array>();
  let offset = 0;
  let longName: string | undefined;
  let sawEnd = false;
  while (offset + BLOCK <= archive.byteLength) {
    const header = archive.subarray(offset, offset + BLOCK);
    if (header.every((b) => b === 0)) {
      sawEnd = true;
      break;
    }
    verifyChecksum(header, offset);
    const size = octal(header, 124, 12);
    const type = String.fromCharCode(header[156] ?? 0);
    const magic = cString(header, 257, 6);
    const prefix = magic === "ustar" ? cString(header, 345, 155) : "";
    let name = cString(header, 0, 100);
    if (prefix !== "") name = `${prefix}/${name}`;
    const bodyStart = offset + BLOCK;
    const bodyEnd = bodyStart + size;
    if (bodyEnd > archive.byteLength) throw new TarError(`entry "${name}" is truncated`);
    const body = archive.subarray(bodyStart, bodyEnd);
    offset = bodyStart + Math.ceil(size / BLOCK) * BLOCK;

    if (type === "L") {
      longName = cString(body, 0, body.byteLength);
      continue;
    }
    if (type === "x") {
      longName = paxPath(body) ?? longName;
      continue;
    }
    if (type === "g") continue;
    const finalName = normalizeName(longName ?? name);
    longName = undefined;
    if (type === "0" || type === "\0") files.set(finalName, body);
  }
  if (!sawEnd && offset < archive.byteLength) throw new TarError("archive is truncated");
  if (!sawEnd && files.size === 0) throw new TarError("archive is empty or not a tar file");
  return files;
}

/**
 * Gunzips and reads a .tar.gz archive (see {@link readTar}).
 *
 * @throws TarError when the data is not gzip, or on any tar error.
 */
export function readTarGz(data: Uint8Array, options: ReadTarOptions = {}): Map<string, Uint8Array> {
  let tar: Buffer;
  try {
    tar = gunzipSync(data, { maxOutputLength: options.maxBytes ?? DEFAULT_MAX_BYTES });
  } catch (cause) {
    throw new TarError("not a valid gzip stream", { cause });
  }
  return readTar(tar, options);
}
