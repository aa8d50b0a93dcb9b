/**
 * Attacks on the task's lifetime: outliving the deadline, killing host processes,
 * outliving the runner; plus the runner running unprivileged.
 */
import assert from "node:assert/strict";
import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { chownSync, copyFileSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { before, describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import {
  alive,
  bash,
  compile,
  hostPidsWithMarker,
  hostProcess,
  hostUidOf,
  IS_ROOT,
  makeWorkspace,
  marker,
  PREPARED_SANDBOXES,
  run,
  sandbox,
  TASK_UID,
  waitFor,
} from "./helpers.js";

const FIXTURES = fileURLToPath(new URL("./fixtures/", import.meta.url));
const REPO = fileURLToPath(new URL("../../", import.meta.url));

before(async () => {
  const r = await sandbox.readiness();
  assert.equal(r.problem, "");
});

describe("deadline", () => {
  it("setsid + double fork + ignored SIGTERM: nothing survives the deadline", async () => {
    const m = marker("deadline");
    let seen = 0;
    const r = await run(
      "bash",
      [
        "-c",
        `(setsid bash -c 'trap "" TERM HUP; exec -a ${m}-a sleep 300' &); ` +
          `(bash -c '(exec -a ${m}-b sleep 300) &' &); trap "" TERM; exec -a ${m}-c sleep 300`,
      ],
      {
        timeoutMs: 2000,
        onStarted: () => {
          void waitFor(() => {
            seen = hostPidsWithMarker(m).length;
            return seen >= 3;
          }, 1800);
        },
      },
    );
    assert.equal(r.result.status, "timed_out");
    assert.equal(r.result.signal, "SIGKILL");
    assert.match(r.result.message, /deadline of 2000 ms/);
    assert.equal(seen, 3, "all three escapees were running before the deadline");
    assert.deepEqual(hostPidsWithMarker(m), [], "a process outlived the deadline");
  });

  it("tasks run as the unprivileged sandbox uid on the host, never as root", async () => {
    const m = marker("uid");
    let uids: number[] = [];
    const r = await run("bash", ["-c", `exec -a ${m} sleep 300`], {
      timeoutMs: 1500,
      onStarted: () => {
        void waitFor(() => {
          uids = hostPidsWithMarker(m).map(hostUidOf);
          return uids.length > 0;
        }, 1400);
      },
    });
    assert.equal(r.result.status, "timed_out");
    assert.deepEqual(uids, [TASK_UID]);
    assert.notEqual(uids[0], 0);
  });

  it("cancel() is idempotent and kills the whole tree", async () => {
    const m = marker("cancel");
    const proc = await sandbox.spawn(
      {
        command: "bash",
        args: ["-c", `(setsid bash -c 'exec -a ${m} sleep 300' &); exec -a ${m} sleep 300`],
        env: {},
        cwd: "",
        workspaceDir: makeWorkspace(),
        network: "none",
        timeoutMs: 30_000,
        limits: (await import("../../runner/src/sandbox/index.js")).DEFAULT_SANDBOX_LIMITS,
      },
      { onOutput: () => {} },
    );
    assert.ok(await waitFor(() => hostPidsWithMarker(m).length === 2, 3000));
    proc.cancel();
    proc.cancel();
    const r = await proc.result;
    proc.cancel();
    assert.equal(r.status, "cancelled");
    assert.deepEqual(hostPidsWithMarker(m), []);
  });
});

describe("killing outside the sandbox", () => {
  it("`kill -9 -1` inside touches no host process, even one running as the same uid", async () => {
    const sentinels: ChildProcess[] = [hostProcess("sleep", ["300"])];
    if (IS_ROOT) sentinels.push(hostProcess("sleep", ["300"], { uid: 65534, gid: 65534 }));
    try {
      for (const s of sentinels) assert.ok(await waitFor(() => alive(s.pid ?? -1), 2000));
      const r = await bash("kill -9 -1; sleep 0.3; echo survived-own-kill");
      assert.equal(r.stdout, "survived-own-kill\n");
      for (const s of sentinels) assert.ok(alive(s.pid ?? -1), `host sentinel ${s.pid} was killed`);
    } finally {
      for (const s of sentinels) s.kill("SIGKILL");
    }
  });

  it("host processes cannot be signalled by pid from inside", async () => {
    const sentinel = hostProcess("sleep", ["300"]);
    try {
      const r = await bash(`kill -9 ${sentinel.pid}; echo rc=$?`);
      assert.equal(r.stdout, "rc=1\n");
      assert.match(r.stderr, /No such process/);
      assert.ok(alive(sentinel.pid ?? -1));
    } finally {
      sentinel.kill("SIGKILL");
    }
  });
});

describe("runner death", () => {
  it("kill -9 of the runner takes the whole sandbox down with it", async () => {
    const m = marker("orphan");
    const ws = makeWorkspace();
    const runner = spawn(
      process.execPath,
      ["--import", "tsx", join(FIXTURES, "mini-runner.ts"), ws, m],
      {
        cwd: REPO,
        stdio: ["ignore", "pipe", "inherit"],
      },
    );
    try {
      let out = "";
      runner.stdout?.on("data", (d: Buffer) => {
        out += d.toString();
      });
      assert.ok(await waitFor(() => out.includes("started"), 15_000), "mini runner did not start");
      assert.ok(await waitFor(() => hostPidsWithMarker(m).length === 2, 3000), "task not running");
      if (IS_ROOT && PREPARED_SANDBOXES) assert.match(out, /started prepared-sandbox/);
      // Its slots (ADR 0028): the tmpfs and the workspace mounted on a slot while it runs.
      const slotMounts = () =>
        readFileSync("/proc/self/mountinfo", "utf8")
          .split("\n")
          .filter((l) => l.includes(`mcpg-slots:${runner.pid} `) || l.includes(` ${ws} `));
      if (IS_ROOT && PREPARED_SANDBOXES) assert.equal(slotMounts().length, 2);
      runner.kill("SIGKILL");
      assert.ok(
        await waitFor(() => hostPidsWithMarker(m).length === 0, 5000),
        `sandboxed processes survived the runner: ${hostPidsWithMarker(m).join(",")}`,
      );
      // The spawner detaches them when the runner dies (its death signal, SIGUSR1).
      assert.ok(
        await waitFor(() => slotMounts().length === 0, 5000),
        `slot mounts survived the runner: ${slotMounts().join(" | ")}`,
      );
    } finally {
      runner.kill("SIGKILL");
    }
  });
});

describe("unprivileged runner", () => {
  it("the same protections hold when the runner itself is not root", async () => {
    const ws = makeWorkspace();
    copyFileSync(compile("probe"), join(ws, "probe"));
    if (IS_ROOT) chownSync(join(ws, "probe"), 65534, 65534);
    const m = marker("unpriv");
    const cmd = [
      process.execPath,
      "--import",
      "tsx",
      join(FIXTURES, "unprivileged-runner.ts"),
      ws,
      "/workspace/probe",
      m,
    ];
    const argv = IS_ROOT
      ? ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", ...cmd]
      : cmd;
    const out = execFileSync(argv[0] as string, argv.slice(1), {
      cwd: REPO,
      env: { PATH: process.env.PATH ?? "/usr/bin:/bin", HOME: "/tmp" },
      encoding: "utf8",
      timeout: 60_000,
    });
    const r = JSON.parse(out.trim().split("\n").pop() ?? "{}") as Record<string, unknown>;
    assert.notEqual(r.uid, 0);
    assert.equal(r.problem, "");
    assert.equal(r.ready, true);
    assert.equal(r.echo, "hello\n");
    assert.match(String(r.status), /CapEff:\s+0000000000000000/);
    assert.match(String(r.status), /NoNewPrivs:\s+1/);
    assert.match(String(r.status), /Seccomp:\s+2/);
    assert.equal(r.unshare, "unshare-user EPERM\n");
    assert.equal(r.tiocsti, "tiocsti-ctty EPERM\n");
    assert.equal(r.shadowExit, 1);
    assert.equal(r.deadline, "timed_out");
    assert.deepEqual(hostPidsWithMarker(m), []);
  });
});
