import assert from "node:assert/strict";
import {
  closeSync,
  existsSync,
  mkdtempSync,
  openSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Readable } from "node:stream";
import { after, describe, it } from "node:test";
import { DEFAULT_HELPER_PATH } from "./sandbox.js";
import { createSpawner, SpawnError, type SpawnedProcess } from "./spawner.js";

const SH = "/bin/sh";

function collect(s: Readable | null): Promise<string> {
  return new Promise((resolve) => {
    let text = "";
    s?.on("data", (c: Buffer) => {
      text += c.toString("utf8");
    });
    s?.on("close", () => resolve(text));
  });
}

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

function closed(p: SpawnedProcess): Promise<[number | null, NodeJS.Signals | null]> {
  return new Promise((resolve) => p.once("close", (code, sig) => resolve([code, sig])));
}

describe("spawner (the launchers' parent, ADR 0023)", () => {
  const spawner = createSpawner({ helperPath: DEFAULT_HELPER_PATH });
  after(() => spawner.close());

  it("runs a program with its pipes, an empty environment and nothing else of ours", async () => {
    const p = await spawner.spawn({
      path: SH,
      argv: [
        SH,
        "-c",
        'read line; echo "got $line"; env | grep -v ^PWD=; ls /proc/self/fd >&2; exit 3',
      ],
      stdio: ["read", "write", "write", "ignore"],
    });
    assert.ok(p.pid > 0);
    const out = collect(p.stdout);
    const err = collect(p.stderr);
    const done = closed(p);
    p.stdin?.end("hello\n");
    assert.deepEqual(await done, [3, null]);
    assert.equal(await out, "got hello\n");
    // (sh sets PWD itself.) 0-3 are the slots; ls adds the one it lists /proc/self/fd with.
    const fds = (await err)
      .trim()
      .split("\n")
      .map(Number)
      .sort((a, b) => a - b);
    assert.deepEqual(fds.slice(0, 4), [0, 1, 2, 3]);
    assert.ok(fds.length <= 5, `only the slots reach the child: ${fds.join(" ")}`);
    assert.equal(p.exitCode, 3);
  });

  it("closes once the child has exited, whatever was left unwritten to the pipes it reads", async () => {
    const p = await spawner.spawn({
      path: "/bin/true",
      argv: ["true"],
      stdio: ["read", "write", "write", "read"],
    });
    assert.deepEqual(await closed(p), [0, null]);
    assert.equal(p.stdin?.destroyed, true);
  });

  it("hands over one of the runner's own descriptors", async () => {
    const dir = mkdtempSync(join(tmpdir(), "mcpg-spawner-"));
    try {
      writeFileSync(join(dir, "f"), "from the runner");
      const fd = openSync(join(dir, "f"), "r");
      try {
        const p = await spawner.spawn({
          path: SH,
          argv: [SH, "-c", "cat <&3"],
          stdio: ["ignore", "write", "ignore", { fd }],
        });
        const out = collect(p.stdout);
        assert.deepEqual(await closed(p), [0, null]);
        assert.equal(await out, "from the runner");
      } finally {
        closeSync(fd);
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("signals a live process, and never one it has already reaped", async () => {
    const p = await spawner.spawn({
      path: "/bin/sleep",
      argv: ["sleep", "30"],
      stdio: ["ignore", "write", "write"],
    });
    const done = closed(p);
    assert.equal(p.kill("SIGTERM"), true);
    assert.deepEqual(await done, [null, "SIGTERM"]);
    assert.equal(p.signalCode, "SIGTERM");
    assert.equal(p.kill("SIGKILL"), false, "reaped: its pid may belong to someone else now");
  });

  it("gives the spawner's pid to the argv, the child's parent", async () => {
    const p = await spawner.spawn({
      path: SH,
      argv: (parent) => [SH, "-c", `test "$PPID" = ${parent} && echo parent-ok`],
      stdio: ["ignore", "write", "write"],
    });
    const out = collect(p.stdout);
    assert.deepEqual(await closed(p), [0, null]);
    assert.equal(await out, "parent-ok\n");
  });

  it("drops to the given uid and gid", { skip: process.getuid?.() !== 0 }, async () => {
    const p = await spawner.spawn({
      path: SH,
      argv: [SH, "-c", 'echo "$(id -u) $(id -g) $(id -G)"'],
      stdio: ["ignore", "write", "write"],
      uid: 65534,
      gid: 65534,
    });
    const out = collect(p.stdout);
    await closed(p);
    assert.equal(await out, "65534 65534 65534\n");
  });

  it("refuses what cannot be started, with the reason", async () => {
    await assert.rejects(
      spawner.spawn({ path: "/nonexistent/prog", argv: ["prog"], stdio: ["ignore"] }),
      (e: Error) =>
        e instanceof SpawnError &&
        /cannot execute \/nonexistent\/prog: No such file/.test(e.message),
    );
    await assert.rejects(
      spawner.spawn({ path: SH, argv: [SH, "-c", "a\0b"], stdio: ["ignore"] }),
      (e: Error) => e instanceof SpawnError && /NUL byte/.test(e.message),
    );
    // Still serving after both.
    const p = await spawner.spawn({ path: "/bin/true", argv: ["true"], stdio: ["ignore"] });
    assert.deepEqual(await closed(p), [0, null]);
  });

  it("a closed spawner still serves what it started: kills reach it, then it exits", async () => {
    const own = createSpawner({ helperPath: DEFAULT_HELPER_PATH });
    const p = await own.spawn({
      path: "/bin/sleep",
      argv: ["sleep", "30"],
      stdio: ["ignore", "write", "write"],
    });
    const pid = await own.pid();
    await own.close(); // does not wait for the sleep
    await assert.rejects(
      own.spawn({ path: "/bin/true", argv: ["true"], stdio: ["ignore"] }),
      /closing/,
    );
    const done = closed(p);
    assert.equal(p.kill("SIGTERM"), true);
    assert.deepEqual(await done, [null, "SIGTERM"]);
    // With nothing left, it ends.
    for (let i = 0; i < 100 && processAlive(pid); i++) await new Promise((r) => setTimeout(r, 20));
    assert.equal(processAlive(pid), false, "the spawner exits once its last child has");
  });

  it("ignores a terminal's ^C (for the runner to stop its tasks in order)", async () => {
    const pid = await spawner.pid();
    process.kill(pid, "SIGINT");
    process.kill(pid, "SIGTERM");
    const p = await spawner.spawn({ path: "/bin/true", argv: ["true"], stdio: ["ignore"] });
    assert.deepEqual(await closed(p), [0, null]);
    assert.equal(await spawner.pid(), pid);
  });

  it("refuses a command line it could not pass whole", async () => {
    await assert.rejects(
      spawner.spawn({ path: SH, argv: [SH, "-c", "x".repeat(5 << 20)], stdio: ["ignore"] }),
      (e: Error) => e instanceof SpawnError && /too long/.test(e.message),
    );
    await assert.rejects(
      spawner.spawn({ path: "/bin/true", argv: Array(5000).fill("x"), stdio: ["ignore"] }),
      /too long/,
    );
  });

  it("a spawner that dies: its children are reported killed, the next spawn starts another", async () => {
    const first = await spawner.pid();
    const p = await spawner.spawn({
      path: "/bin/sleep",
      argv: ["sleep", "30"],
      stdio: ["ignore", "write", "write"],
    });
    const done = new Promise((resolve) => p.once("exit", (code, sig) => resolve([code, sig])));
    process.kill(first, "SIGKILL");
    assert.deepEqual(await done, [null, "SIGKILL"]);
    // (sleep itself arms no PDEATHSIG, unlike a launcher: stop it here)
    process.kill(p.pid, "SIGKILL");
    const q = await spawner.spawn({ path: "/bin/true", argv: ["true"], stdio: ["ignore"] });
    assert.deepEqual(await closed(q), [0, null]);
    assert.notEqual(await spawner.pid(), first);
  });
});

describe("spawner slots (prepared sandboxes, ADR 0028)", {
  skip: process.getuid?.() !== 0 && "the slots tmpfs needs root",
}, () => {
  const dir = mkdtempSync(join(tmpdir(), "mcpg-slots-test-"));
  const spawner = createSpawner({ helperPath: DEFAULT_HELPER_PATH, slotsDir: () => dir });
  const mounts = () =>
    readFileSync("/proc/self/mountinfo", "utf8")
      .split("\n")
      .filter((l) => (l.split(" ")[4] ?? "").startsWith(dir));

  it("mounts its tmpfs, binds a directory onto a slot and takes it off again", async () => {
    assert.equal(await spawner.slots(), null);
    assert.match(mounts()[0] ?? "", / - tmpfs mcpg-slots:\d+ /);
    await spawner.slot("slot", "a-1");
    const src = mkdtempSync(join(tmpdir(), "mcpg-slot-src-"));
    writeFileSync(join(src, "f"), "x");
    await spawner.slot("bind", "a-1", src);
    assert.equal(readFileSync(join(dir, "a-1", "f"), "utf8"), "x");
    assert.match(mounts().find((l) => l.includes(`${dir}/a-1 `)) ?? "", /nosuid,nodev/);
    await spawner.slot("unslot", "a-1");
    assert.equal(mounts().length, 1);
    assert.equal(existsSync(join(dir, "a-1")), false);
    rmSync(src, { recursive: true });
  });

  it("without a slots directory, says so for every slot request", async () => {
    const plain = createSpawner({ helperPath: DEFAULT_HELPER_PATH });
    assert.equal(await plain.slots(), "no slots directory");
    await assert.rejects(plain.slot("slot", "a"), /the slots are not mounted/);
    await plain.close();
  });

  it("refuses names that are not plain, relative sources and missing ones, saying why", async () => {
    await assert.rejects(spawner.slot("slot", "../escape"), /invalid slot request/);
    await assert.rejects(spawner.slot("slot", ""), /invalid slot request/);
    await spawner.slot("slot", "b");
    await assert.rejects(spawner.slot("bind", "b", "relative/dir"), /must be absolute/);
    await assert.rejects(
      spawner.slot("bind", "b", "/nonexistent/ws"),
      /open_tree \/nonexistent\/ws/,
    );
    await assert.rejects(spawner.slot("slot", "b"), /mkdir b: File exists/);
    await spawner.slot("unslot", "b");
    await spawner.slot("unslot", "b"); // (gone already: nothing to do)
  });

  it("detaches its tmpfs and removes the directory when it exits", async () => {
    await spawner.close();
    assert.equal(mounts().length, 0);
    assert.equal(existsSync(dir), false);
  });
});
