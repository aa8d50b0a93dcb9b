/**
 * Workspace quotas: each workspace is its own size-capped filesystem (a sparse ext4 image,
 * loop-mounted), so bytes and inodes are bounded by the kernel for tasks and file operations
 * alike. Needs root (mount, loop devices), like CI.
 */
import assert from "node:assert/strict";
import { mkdirSync, rmSync, statfsSync, statSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { Code } from "@connectrpc/connect";
import { toConnectError } from "@mcp-gateway/common/errors";
import {
  createWorkspaceFs,
  createWorkspaceQuota,
  WorkspaceError,
  type WorkspaceFs,
  type WorkspaceQuota,
} from "../../runner/src/workspace/index.js";
import { BASE, bash, IS_ROOT, sandbox } from "./helpers.js";

const MiB = 1024 * 1024;
const QUOTA_BYTES = 64 * MiB;
const QUOTA_INODES = 2000;
const root = join(BASE, "quota-workspaces");
const imageDir = join(BASE, "quota-images");
const quotas: WorkspaceQuota[] = [];

/** A runner's view of the tenant: quota'd workspaces under `root` (a new one = a restart). */
function runnerWorkspaces(): WorkspaceFs {
  const quota = createWorkspaceQuota({
    mode: "loop-image",
    bytes: QUOTA_BYTES,
    inodes: QUOTA_INODES,
    imageDir,
    uid: 65534,
    gid: 65534,
  });
  quotas.push(quota);
  return createWorkspaceFs({
    root,
    maxReadBytes: 16 * MiB,
    maxWriteBytes: 16 * MiB,
    quota,
  });
}

let fs: WorkspaceFs;

before(async () => {
  // CI runs as root: loop mounts must work there, never silently skip.
  assert.ok(IS_ROOT, "workspace quota tests need root (loop mounts), as in CI");
  assert.equal((await sandbox.readiness()).problem, "");
  mkdirSync(root, { recursive: true, mode: 0o711 });
  fs = runnerWorkspaces();
});

after(async () => {
  for (const q of quotas) await q.detachAll();
  rmSync(root, { recursive: true, force: true });
  rmSync(imageDir, { recursive: true, force: true });
});

const bytes = (n: number) => new Uint8Array(n).fill(0x61);

describe("workspace byte quota", () => {
  it("a task writing many files, each under the file-size limit, stops at the quota", async () => {
    const ws = await fs.ensure("bytes-task");
    const r = await bash(
      "for i in $(seq 40); do head -c 8388608 /dev/zero > f$i || { echo stopped at $i; break; }; done; du -sm . | cut -f1",
      { workspaceDir: ws, timeoutMs: 30_000 },
    );
    assert.equal(r.result.status, "completed");
    assert.match(r.stderr, /No space left on device/);
    assert.match(r.stdout, /^stopped at ([2-9]|1\d)\n/);
    const used = Number(r.stdout.split("\n")[1]);
    assert.ok(used <= 70, `${used} MiB held by a workspace with a 64 MiB quota`);
    const u = await fs.usage("bytes-task");
    assert.ok(u !== null && u.bytesUsed <= QUOTA_BYTES * 1.1 && u.bytesLimit === QUOTA_BYTES);
    // still usable afterwards: delete, and write again
    const again = await bash("rm f1 f2 && echo ok > small && cat small", { workspaceDir: ws });
    assert.equal(again.stdout, "ok\n");
  });

  it("WriteFile into a full workspace fails with resource_exhausted naming the quota", async () => {
    const ws = await fs.ensure("bytes-rpc");
    await bash("head -c 80000000 /dev/zero > fill; true", { workspaceDir: ws, timeoutMs: 30_000 });
    const err = await fs
      .writeFile("bytes-rpc", "more.bin", bytes(4 * MiB), { createParents: false, mode: 0o644 })
      .then(
        () => null,
        (e: unknown) => e,
      );
    assert.ok(err instanceof WorkspaceError, String(err));
    assert.equal(err.code, "quota_exceeded");
    assert.match(err.message, /^workspace quota of 64 MiB reached/);
    assert.equal(toConnectError(err).code, Code.ResourceExhausted);
    // the failed write gave its blocks back, and after a delete the API writes again
    const list = await fs.listDirectory("bytes-rpc", "");
    assert.equal(list.find((e) => e.name === "more.bin")?.size ?? 0, 0);
    await fs.deleteFile("bytes-rpc", "fill", { recursive: false });
    const ok = await fs.writeFile("bytes-rpc", "more.bin", bytes(4 * MiB), {
      createParents: false,
      mode: 0o644,
    });
    assert.equal(ok.bytesWritten, 4 * MiB);
  });

  it("two workspaces do not share a quota", async () => {
    const a = await fs.ensure("share-a");
    await fs.ensure("share-b");
    await bash("head -c 80000000 /dev/zero > fill; true", { workspaceDir: a, timeoutMs: 30_000 });
    assert.ok(statfsSync(a).bavail * statfsSync(a).bsize < MiB);
    const w = await fs.writeFile("share-b", "x.bin", bytes(8 * MiB), {
      createParents: false,
      mode: 0o644,
    });
    assert.equal(w.bytesWritten, 8 * MiB);
  });
});

describe("workspace inode quota", () => {
  it("200,000 empty files stop at the inode quota; the workspace stays usable", async () => {
    const ws = await fs.ensure("inodes");
    const r = await bash(
      "seq 200000 | sed 's/^/e/' | xargs touch 2>/dev/null; ls | wc -l; rm -f e1* && echo ok > after && cat after",
      { workspaceDir: ws, timeoutMs: 60_000 },
    );
    assert.equal(r.result.status, "completed");
    const [count, after] = r.stdout.split("\n");
    const u = await fs.usage("inodes");
    // mkfs rounds the inode count up to whole block groups
    assert.ok(u !== null && u.inodesLimit >= QUOTA_INODES && u.inodesLimit < QUOTA_INODES * 1.2);
    assert.ok(Number(count) < u.inodesLimit, `${count} files with ${u.inodesLimit} inodes`);
    assert.ok(Number(count) > QUOTA_INODES / 2, `only ${count} files: the quota is not the bound`);
    assert.equal(after, "ok");
  });

  it("WriteFile creating a file past the inode quota says which quota was reached", async () => {
    const ws = await fs.ensure("inodes-rpc");
    await bash("seq 5000 | sed 's/^/e/' | xargs touch 2>/dev/null; true", {
      workspaceDir: ws,
      timeoutMs: 60_000,
    });
    await assert.rejects(
      fs.writeFile("inodes-rpc", "one-more", bytes(1), { createParents: false, mode: 0o644 }),
      (e: unknown) =>
        e instanceof WorkspaceError &&
        e.code === "quota_exceeded" &&
        /^workspace quota of \d+ files and directories reached/.test(e.message),
    );
  });
});

describe("size from the policy", () => {
  it("a workspace gets the policy's smaller quota; a larger one is capped by the runner's maximum", async () => {
    await fs.ensure("policy-small", { bytes: 24 * MiB, inodes: 500 });
    const small = await fs.usage("policy-small");
    assert.equal(small?.bytesLimit, 24 * MiB);
    assert.ok(small !== null && small.inodesLimit >= 500 && small.inodesLimit < 600);
    const ws = await fs.ensure("policy-small");
    const r = await bash("head -c 40000000 /dev/zero > f; du -sm f | cut -f1", {
      workspaceDir: ws,
      timeoutMs: 30_000,
    });
    assert.match(r.stderr, /No space left on device/);
    assert.ok(Number(r.stdout.trim()) <= 25, r.stdout);
    await fs.ensure("policy-big", { bytes: 4096 * MiB, inodes: 1_000_000 });
    const big = await fs.usage("policy-big");
    assert.equal(big?.bytesLimit, QUOTA_BYTES);
    assert.ok(big !== null && big.inodesLimit < QUOTA_INODES * 1.2);
    // the size is fixed at creation: a later, different obligation does not change it
    await fs.ensure("policy-small", { bytes: 64 * MiB, inodes: 2000 });
    assert.equal((await fs.usage("policy-small"))?.bytesLimit, 24 * MiB);
  });
});

describe("across a runner restart", () => {
  it("the quota and the files survive: a new runner mounts the same image with the same limits", async () => {
    const ws = await fs.ensure("restart");
    await fs.writeFile("restart", "kept.txt", new TextEncoder().encode("kept"), {
      createParents: false,
      mode: 0o644,
    });
    for (const q of quotas) await q.detachAll();
    // unmounted: the directory is back on the host filesystem
    assert.equal(statSync(ws).dev, statSync(root).dev);
    const restarted = runnerWorkspaces();
    await restarted.ensure("restart");
    const read = await restarted.readFile("restart", "kept.txt");
    assert.equal(Buffer.from(read.content).toString(), "kept");
    const r = await bash("head -c 80000000 /dev/zero > fill; du -sm fill | cut -f1", {
      workspaceDir: ws,
      timeoutMs: 30_000,
    });
    assert.match(r.stderr, /No space left on device/);
    assert.ok(Number(r.stdout.trim()) <= 64);
  });
});
