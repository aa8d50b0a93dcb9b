/**
 * Attacks on the filesystem: escaping the workspace (commands and WorkspaceFs), reading
 * host secrets, planted symlinks and hard links, rename races, host /proc; the workspace of a
 * prepared sandbox (ADR 0028), mounted on its slot after set-up.
 */
import assert from "node:assert/strict";
import { type ChildProcess, execFileSync } from "node:child_process";
import { chownSync, existsSync, link, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { basename, join } from "node:path";
import { after, before, describe, it } from "node:test";
import { promisify } from "node:util";
import { createWorkspaceFs, WorkspaceError } from "../../runner/src/workspace/index.js";
import {
  BASE,
  bash,
  hostProcess,
  IS_ROOT,
  makeWorkspace,
  PREPARED_SANDBOXES,
  type Run,
  sandbox,
  waitFor,
} from "./helpers.js";

const linkAsync = promisify(link);
const SECRET = "TOP-SECRET-d41d8cd98f00";
let outsideDir = "";
let secretFile = "";
let fakeKey = "";

before(async () => {
  const r = await sandbox.readiness();
  assert.equal(r.problem, "");
  outsideDir = join(BASE, "outside");
  mkdirSync(outsideDir, { recursive: true });
  secretFile = join(outsideDir, "secret.txt");
  writeFileSync(secretFile, SECRET, { mode: 0o644 });
  // A fake runner data dir with a TLS key, as the runner would keep next to workspaces.
  const keyDir = join(BASE, "runner-data", "tls");
  mkdirSync(keyDir, { recursive: true });
  fakeKey = join(keyDir, "runner-key.pem");
  writeFileSync(fakeKey, `-----BEGIN PRIVATE KEY-----\n${SECRET}\n-----END PRIVATE KEY-----\n`);
});

describe("escaping the workspace with commands", () => {
  it("writing through '..' from the workspace hits the read-only root, nothing lands on the host", async () => {
    const ws = makeWorkspace();
    const r = await bash(
      "echo pwned > ../escape.txt; echo rc=$?; echo pwned > /workspace/../../escape2.txt; echo rc=$?",
      {
        workspaceDir: ws,
      },
    );
    assert.equal(r.stdout, "rc=1\nrc=1\n");
    assert.match(r.stderr, /Read-only file system/);
    assert.equal(existsSync(join(ws, "..", "escape.txt")), false);
    assert.equal(existsSync(join(BASE, "escape2.txt")), false);
  });

  it("absolute paths to system directories are read-only", async () => {
    const r = await bash(
      "for p in /usr/pwn /etc/pwn /bin/pwn /pwn /.mcpg/init; do echo x > $p 2>/dev/null && echo wrote $p; done; echo done",
    );
    assert.equal(r.stdout, "done\n");
    assert.equal(existsSync("/usr/pwn"), false);
    assert.equal(existsSync("/etc/pwn"), false);
  });

  it("a symlink to a host path leads nowhere: the host tree is not mounted", async () => {
    const r = await bash(
      `ln -s ${secretFile} l && cat l; echo rc=$?; cat ${secretFile}; ls ${outsideDir}`,
    );
    assert.doesNotMatch(r.stdout, new RegExp(SECRET));
    assert.match(r.stdout, /rc=1/);
    assert.match(r.stderr, /No such file or directory/);
  });

  it("a hard link to a file outside cannot be created (other mount)", async () => {
    const r = await bash("ln /etc/passwd hl; echo rc=$?; ln /usr/bin/sh sh2; echo rc=$?");
    assert.equal(r.stdout, "rc=1\nrc=1\n");
    assert.match(r.stderr, /Invalid cross-device link/);
  });
});

describe("reading host secrets", () => {
  it("/etc/shadow, /root and /home do not exist inside", async () => {
    const r = await bash("cat /etc/shadow; ls /root /home 2>&1; ls /etc");
    assert.match(r.stderr, /\/etc\/shadow: No such file or directory/);
    assert.match(r.stdout, /cannot access '\/root'/);
    assert.match(r.stdout, /cannot access '\/home'/);
    assert.doesNotMatch(r.stdout, /shadow|gshadow|ssh|sudoers/);
  });

  it("the runner's data dir and keys are invisible (exact path and a search)", async () => {
    const r = await bash(
      `cat ${fakeKey}; echo rc=$?; find / -name '${basename(fakeKey)}' 2>/dev/null; grep -rl 'BEGIN PRIVATE KEY' /tmp /workspace /etc /dev/shm /.mcpg 2>/dev/null; echo end`,
      { timeoutMs: 30_000 },
    );
    // cat fails, find and grep find nothing
    assert.equal(r.stdout, "rc=1\nend\n");
    assert.match(r.stderr, /No such file or directory/);
  });

  it("another process's /proc/<pid>/environ is unreachable (private PID namespace)", async () => {
    let host: ChildProcess | null = null;
    try {
      host = hostProcess("sleep", ["300"], { env: { HOST_PROCESS_SECRET: SECRET } });
      const pid = host.pid ?? -1;
      assert.ok(
        await waitFor(() => readFileSync(`/proc/${pid}/environ`, "utf8").includes(SECRET), 2000),
      );
      const r = await bash(
        `cat /proc/${pid}/environ; echo rc=$?; cat /proc/*/environ | tr '\\0' '\\n'; ls /proc | grep -E '^[0-9]+$' | wc -l`,
      );
      assert.doesNotMatch(r.stdout, new RegExp(SECRET));
      assert.match(r.stdout, /rc=1/);
      // only the sandbox's own few processes are visible
      const count = Number(r.stdout.trim().split("\n").pop());
      assert.ok(count > 0 && count <= 6, `saw ${count} pids`);
    } finally {
      host?.kill("SIGKILL");
    }
  });

  it("the runner's environment does not leak into the task", async () => {
    process.env.MCPG_RUNNER_SECRET = SECRET;
    try {
      const r = await bash("env; cat /proc/self/environ | tr '\\0' '\\n'");
      assert.doesNotMatch(r.stdout, new RegExp(SECRET));
      const names = new Set(
        r.stdout
          .split("\n")
          .filter((l) => l.includes("="))
          .map((l) => l.split("=")[0]),
      );
      for (const n of names) {
        assert.ok(
          [
            "PATH",
            "HOME",
            "TMPDIR",
            "LANG",
            "TERM",
            "USER",
            "LOGNAME",
            "SHELL",
            "PWD",
            "SHLVL",
            "_",
          ].includes(n ?? ""),
          `unexpected variable ${n}`,
        );
      }
    } finally {
      delete process.env.MCPG_RUNNER_SECRET;
    }
  });

  it("no descriptor of the runner leaks in: only 0, 1, 2 are open", async () => {
    const ws = makeWorkspace();
    const { install, run } = await import("./helpers.js");
    const probe = install("probe", ws);
    const r = await run(probe, ["fds"], { workspaceDir: ws });
    assert.equal(r.stdout, "fds 0 1 2\n");
  });
});

describe("escaping through WorkspaceFs", () => {
  const root = join(BASE, "wsfs-root");
  const fs = createWorkspaceFs({ root, maxReadBytes: 1 << 20, maxWriteBytes: 1 << 20 });
  let ws = "";

  before(async () => {
    ws = await fs.ensure("attack");
  });

  async function refused(p: Promise<unknown>, code: WorkspaceError["code"]): Promise<void> {
    await assert.rejects(p, (e: unknown) => {
      assert.ok(e instanceof WorkspaceError);
      assert.equal(e.code, code, e.message);
      return true;
    });
  }

  it("'..' and absolute paths are refused", async () => {
    await refused(fs.readFile("attack", "../../outside/secret.txt"), "escape_attempt");
    await refused(fs.readFile("attack", secretFile), "escape_attempt");
    await refused(
      fs.writeFile("attack", "../../outside/secret.txt", new Uint8Array([1]), {
        createParents: false,
        mode: 0o644,
      }),
      "escape_attempt",
    );
    assert.equal(readFileSync(secretFile, "utf8"), SECRET);
  });

  it("symlinks planted by a previous task (to /etc, to /) are never followed", async () => {
    const r = await bash(
      "ln -s /etc/shadow shadow; ln -s / rootfs; mkdir d; ln -s /root d/r; echo ok",
      {
        workspaceDir: ws,
      },
    );
    assert.equal(r.stdout, "ok\n");
    await refused(fs.readFile("attack", "shadow"), "escape_attempt");
    await refused(fs.readFile("attack", "rootfs/etc/shadow"), "escape_attempt");
    await refused(fs.listDirectory("attack", "d/r"), "escape_attempt");
    await refused(
      fs.writeFile("attack", "rootfs/tmp/pwned", new Uint8Array([1]), {
        createParents: true,
        mode: 0o644,
      }),
      "escape_attempt",
    );
    assert.equal(existsSync("/tmp/pwned"), false);
    // recursive delete removes the links, never their targets
    await fs.deleteFile("attack", "d", { recursive: true });
    assert.ok(existsSync("/etc/shadow") || !IS_ROOT);
  });

  it("a hard link planted on the host side is refused for read and write", async () => {
    // Worst case: the outside file is even writable by the sandbox uid, so only the
    // st_nlink check stands between the task and it.
    const victim = join(outsideDir, "victim.txt");
    writeFileSync(victim, SECRET);
    if (IS_ROOT) chownSync(victim, 65534, 65534);
    await linkAsync(victim, join(ws, "hard.txt"));
    await refused(fs.readFile("attack", "hard.txt"), "escape_attempt");
    await refused(
      fs.writeFile("attack", "hard.txt", new Uint8Array([1]), {
        createParents: false,
        mode: 0o644,
      }),
      "escape_attempt",
    );
    assert.equal(readFileSync(victim, "utf8"), SECRET);
  });

  it("a task racing dir<->symlink swaps never makes a read leave the workspace", async () => {
    // The task swaps d between a real directory holding a decoy "secret.txt" and a symlink
    // to the host directory holding the real secret, as fast as it can.
    const proc = await sandbox.spawn(
      {
        command: "bash",
        args: [
          "-c",
          `mkdir -p real && echo decoy > real/secret.txt; for i in $(seq 1 200000); do ln -sfn ${outsideDir} d; mv -T real d2 2>/dev/null; rm -f d; mv -T d2 d 2>/dev/null; mv -T d real 2>/dev/null; done`,
        ],
        env: {},
        cwd: "",
        workspaceDir: ws,
        network: "none",
        timeoutMs: 20_000,
        limits: {
          maxOutputBytes: 1024,
          memoryBytes: 1 << 30,
          maxProcesses: 64,
          maxFileSizeBytes: 1 << 20,
          maxOpenFiles: 256,
          cpuSeconds: 60,
          tmpBytes: 1 << 20,
        },
      },
      { onOutput: () => {} },
    );
    const seen = new Map<string, number>();
    for (let i = 0; i < 150; i++) {
      try {
        const r = await fs.readFile("attack", "d/secret.txt");
        const text = new TextDecoder().decode(r.content);
        assert.doesNotMatch(text, new RegExp(SECRET), "read escaped through a symlink swap");
        seen.set("ok", (seen.get("ok") ?? 0) + 1);
      } catch (e) {
        assert.ok(e instanceof WorkspaceError);
        assert.ok(["escape_attempt", "not_found", "not_a_directory"].includes(e.code), e.code);
        seen.set(e.code, (seen.get(e.code) ?? 0) + 1);
      }
    }
    proc.cancel();
    await proc.result;
    // the race really happened: the symlink state was observed at least once
    assert.ok((seen.get("escape_attempt") ?? 0) > 0, JSON.stringify([...seen]));
  });
});

describe("the workspace mounted into a prepared sandbox (ADR 0028)", () => {
  const pause = () => new Promise((r) => setTimeout(r, 150));
  /** Runs the script until a run starts in a prepared sandbox (with them on), or once. */
  async function prepared(script: string, workspaceDir = makeWorkspace()): Promise<Run> {
    for (let i = 0; i < 20; i++) {
      const r = await bash(script, { workspaceDir });
      if (!PREPARED_SANDBOXES || r.start === "prepared-sandbox") return r;
      await pause();
    }
    assert.fail("no task started in a prepared sandbox: this run does not test them");
  }

  it("tasks start in prepared sandboxes when they are on (and never when off)", async () => {
    const r = await prepared("true");
    assert.equal(r.result.status, "completed");
    if (IS_ROOT && PREPARED_SANDBOXES) assert.equal(r.start, "prepared-sandbox");
    if (!PREPARED_SANDBOXES) assert.notEqual(r.start, "prepared-sandbox");
  });

  it("the workspace is nosuid and nodev: a device node planted in it opens nothing", async () => {
    const ws = makeWorkspace();
    if (IS_ROOT) {
      // (root on the host, or an archive the task unpacked with a privileged tool)
      execFileSync("mknod", ["-m", "666", join(ws, "zero"), "c", "1", "5"]);
    }
    const r = await prepared(
      "grep ' /workspace ' /proc/self/mountinfo | tail -1; head -c 4 /workspace/zero > /dev/null || echo refused",
      ws,
    );
    const [mount] = r.stdout.split("\n");
    assert.match(mount ?? "", /^\S+ \S+ \S+ \S+ \/workspace rw,nosuid,nodev/);
    if (IS_ROOT) {
      assert.match(r.stdout, /refused/);
      assert.match(r.stderr, /Permission denied/);
    }
  });

  it("tasks at once never see another's workspace, by path or by search", async () => {
    await prepared("true");
    await pause();
    const secrets = ["a", "b", "c"].map((k) => `${SECRET}-${k}`);
    const runs = await Promise.all(
      secrets.map((secret, i) =>
        bash(
          `echo ${secret} > /workspace/secret-${i}; sleep 0.3; ls -A /workspace; ` +
            // every file of that name outside the read-only system trees, and the mounts
            // of host directories under the suite's base (only its own workspace)
            `find / \\( -path /proc -o -path /usr -o -path /sys \\) -prune -o -name 'secret-*' -print 2>/dev/null; ` +
            `grep -c '${basename(BASE)}' /proc/self/mountinfo`,
        ),
      ),
    );
    runs.forEach((r, i) => {
      assert.equal(r.result.status, "completed", r.result.message);
      // its own file, found only where it is; nothing of the others'
      assert.equal(r.stdout, `secret-${i}\n/workspace/secret-${i}\n1\n`);
    });
  });

  it("the task cannot unmount its workspace to reach the slot or the host beneath", async () => {
    const r = await prepared(
      "umount /workspace 2>&1 || echo refused; umount -l /workspace 2>&1 || echo refused; ls -A /workspace",
    );
    assert.equal(r.stdout.match(/refused/g)?.length, 2);
    assert.equal(r.result.status, "completed");
  });
});

after(() => {
  // BASE is under the OS tmpdir; leave it for post-mortem of failures.
});
