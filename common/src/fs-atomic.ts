import { randomBytes } from "node:crypto";
import { constants as fsConstants } from "node:fs";
import { open } from "node:fs/promises";

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
