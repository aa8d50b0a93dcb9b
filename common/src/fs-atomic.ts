import { randomBytes } from "node:crypto";
import { constants as fsConstants } from "node:fs";
import { link, open, unlink } from "node:fs/promises";

/**
 * Writes `data` to a new temporary file beside `target` (created exclusively
 * with `mode`, chmod'ed to it against the umask, fsync'ed) and returns its
 * path, for the caller to rename or link into place atomically.
 */
export async function writeTempFile(target: string, data: string, mode: number): Promise<string> {
  const tmp = `${target}.${process.pid}.${randomBytes(4).toString("hex")}.tmp`;
  const handle = await open(
    tmp,
    fsConstants.O_WRONLY | fsConstants.O_CREAT | fsConstants.O_EXCL,
    mode,
  );
  try {
    await handle.writeFile(data);
    await handle.chmod(mode);
    await handle.sync();
  } finally {
    await handle.close();
  }
  return tmp;
}

/**
 * Creates `target` with `data` unless it exists: written whole under a
 * temporary name ({@link writeTempFile}), then hard-linked into place, so a
 * concurrent creator or reader sees either no file or a complete one, and an
 * existing file is never replaced. Resolves true when this call created it.
 */
export async function createFileOnce(target: string, data: string, mode: number): Promise<boolean> {
  const tmp = await writeTempFile(target, data, mode);
  try {
    await link(tmp, target);
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "EEXIST") throw err;
    return false; // another process created it first
  } finally {
    await unlink(tmp).catch(() => undefined);
  }
}
