import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { existsSync } from "node:fs";
import {
  chmod,
  chown,
  link,
  mkdir,
  mkdtemp,
  readFile,
  rm,
  stat,
  symlink,
  writeFile,
} from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { WorkspaceError } from "./errors.js";
import { createWorkspaceFs, type WorkspaceFs } from "./workspace-fs.js";

const isRoot = process.getuid?.() === 0;
let base = "";
let root = "";
let outside = "";
let fs: WorkspaceFs;
let ws = "";
const enc = (s: string) => new TextEncoder().encode(s);
const dec = (b: Uint8Array) => new TextDecoder().decode(b);

async function rejectsWith(p: Promise<unknown>, code: WorkspaceError["code"]): Promise<void> {
  await assert.rejects(p, (e: unknown) => {
    assert.ok(e instanceof WorkspaceError, `expected WorkspaceError, got ${String(e)}`);
    assert.equal(e.code, code, e.message);
    return true;
  });
}

before(async () => {
  base = await mkdtemp(join(tmpdir(), "mcpg-wsfs-"));
  await chmod(base, 0o711); // the sandbox uid must be able to traverse to the workspaces
  root = join(base, "workspaces");
  outside = join(base, "outside");
  await mkdir(outside);
  await writeFile(join(outside, "secret.txt"), "TOP-SECRET");
  fs = createWorkspaceFs({ root, maxReadBytes: 1024, maxWriteBytes: 1024 });
  ws = await fs.ensure("w1");
});
after(async () => {
  await rm(base, { recursive: true, force: true });
});

describe("WorkspaceFs", () => {
  it("ensure validates names, creates the dir owned by the sandbox uid, and is idempotent", async () => {
    assert.equal(ws, join(root, "w1"));
    const st = await stat(ws);
    assert.ok(st.isDirectory());
    if (isRoot) assert.equal(st.uid, 65534);
    assert.equal(await fs.ensure("w1"), ws);
    for (const bad of ["", ".", "..", "a/b", "x".repeat(65), "a b"]) {
      await rejectsWith(fs.ensure(bad), "invalid_path");
    }
  });

  it("writes, reads, lists and deletes inside the workspace", async () => {
    const w = await fs.writeFile("w1", "d/e/f.txt", enc("hello"), {
      createParents: true,
      mode: 0o4755,
    });
    assert.equal(w.bytesWritten, 5);
    const r = await fs.readFile("w1", "d/e/f.txt");
    assert.equal(dec(r.content), "hello");
    assert.equal(r.size, 5);
    const list = await fs.listDirectory("w1", "d/e");
    assert.equal(list.length, 1);
    assert.equal(list[0]?.name, "f.txt");
    assert.equal(list[0]?.type, "file");
    assert.equal(list[0]?.mode, 0o755, "setuid bit must be stripped");
    const rootList = await fs.listDirectory("w1", "");
    assert.ok(rootList.some((e) => e.name === "d" && e.type === "directory"));
    await rejectsWith(fs.deleteFile("w1", "d", { recursive: false }), "is_a_directory");
    await fs.deleteFile("w1", "d", { recursive: true });
    await rejectsWith(fs.readFile("w1", "d/e/f.txt"), "not_found");
  });

  it("refuses '..' and absolute paths", async () => {
    await rejectsWith(fs.readFile("w1", "../../outside/secret.txt"), "escape_attempt");
    await rejectsWith(fs.readFile("w1", "/etc/passwd"), "escape_attempt");
    await rejectsWith(
      fs.writeFile("w1", "../escaped.txt", enc("x"), { createParents: false, mode: 0o644 }),
      "escape_attempt",
    );
    await rejectsWith(fs.deleteFile("w1", "a/../../x", { recursive: true }), "escape_attempt");
    await rejectsWith(fs.listDirectory("w1", ".."), "escape_attempt");
    assert.equal(existsSync(join(root, "escaped.txt")), false);
  });

  it("refuses a planted symlink to a file outside, for read, write and as a parent dir", async () => {
    await symlink(join(outside, "secret.txt"), join(ws, "link.txt"));
    await symlink(outside, join(ws, "dirlink"));
    await rejectsWith(fs.readFile("w1", "link.txt"), "escape_attempt");
    await rejectsWith(
      fs.writeFile("w1", "link.txt", enc("pwned"), { createParents: false, mode: 0o644 }),
      "escape_attempt",
    );
    await rejectsWith(fs.readFile("w1", "dirlink/secret.txt"), "escape_attempt");
    await rejectsWith(
      fs.writeFile("w1", "dirlink/new.txt", enc("pwned"), { createParents: true, mode: 0o644 }),
      "escape_attempt",
    );
    await rejectsWith(fs.listDirectory("w1", "dirlink"), "escape_attempt");
    assert.equal(await readFile(join(outside, "secret.txt"), "utf8"), "TOP-SECRET");
    assert.equal(existsSync(join(outside, "new.txt")), false);
    // deleting the link removes the link, never the target
    await fs.deleteFile("w1", "dirlink", { recursive: true });
    assert.equal(await readFile(join(outside, "secret.txt"), "utf8"), "TOP-SECRET");
    const entries = await fs.listDirectory("w1", "");
    assert.equal(entries.find((e) => e.name === "link.txt")?.type, "symlink");
    await fs.deleteFile("w1", "link.txt", { recursive: false });
  });

  it("refuses a planted hard link to a file outside", async () => {
    // Worst case: the outside file is writable by the sandbox uid, so only the
    // st_nlink check stands between the task and the file.
    if (isRoot) await chown(join(outside, "secret.txt"), 65534, 65534);
    await link(join(outside, "secret.txt"), join(ws, "hard.txt"));
    await rejectsWith(fs.readFile("w1", "hard.txt"), "escape_attempt");
    await rejectsWith(
      fs.writeFile("w1", "hard.txt", enc("pwned"), { createParents: false, mode: 0o644 }),
      "escape_attempt",
    );
    assert.equal(await readFile(join(outside, "secret.txt"), "utf8"), "TOP-SECRET");
    await fs.deleteFile("w1", "hard.txt", { recursive: false });
    assert.equal(await readFile(join(outside, "secret.txt"), "utf8"), "TOP-SECRET");
  });

  it("enforces read and write size caps", async () => {
    await rejectsWith(
      fs.writeFile("w1", "big.bin", new Uint8Array(1025), { createParents: false, mode: 0o644 }),
      "too_large",
    );
    await writeFile(join(ws, "big2.bin"), Buffer.alloc(2000));
    await rejectsWith(fs.readFile("w1", "big2.bin"), "too_large");
  });

  it("does not hang on a FIFO and reports types of non-regular files", async () => {
    execFileSync("mkfifo", ["-m", "666", join(ws, "fifo")]);
    await rejectsWith(fs.readFile("w1", "fifo"), "invalid_path");
    await rejectsWith(
      fs.writeFile("w1", "fifo", enc("x"), { createParents: false, mode: 0o644 }),
      "invalid_path",
    );
    const e = (await fs.listDirectory("w1", "")).find((x) => x.name === "fifo");
    assert.equal(e?.type, "other");
  });

  it("maps missing files, file-as-directory and directory-as-file", async () => {
    await rejectsWith(fs.readFile("w1", "nope.txt"), "not_found");
    await fs.writeFile("w1", "plain.txt", enc("x"), { createParents: false, mode: 0o600 });
    await rejectsWith(fs.listDirectory("w1", "plain.txt"), "not_a_directory");
    await mkdir(join(ws, "adir"));
    await rejectsWith(fs.readFile("w1", "adir"), "is_a_directory");
    await rejectsWith(
      fs.writeFile("w1", "missing/x.txt", enc("x"), { createParents: false, mode: 0o644 }),
      "not_found",
    );
  });
});
