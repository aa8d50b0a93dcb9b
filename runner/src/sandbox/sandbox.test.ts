import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import {
  chmodSync,
  chownSync,
  copyFileSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { chown, mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { basename, join } from "node:path";
import { after, before, describe, it } from "node:test";
import { pino } from "pino";
import { SandboxSpecError, SandboxUnavailableError } from "./errors.js";
import { DEFAULT_SANDBOX_LIMITS } from "./limits.js";
import { createSandbox } from "./sandbox.js";
import type { SandboxExecPolicy, SandboxSpec } from "./types.js";

const isRoot = process.getuid?.() === 0;
let ws = "";

before(async () => {
  ws = await mkdtemp(join(tmpdir(), "mcpg-sandbox-test-"));
  if (isRoot) await chown(ws, 65534, 65534);
});
after(async () => {
  await rm(ws, { recursive: true, force: true });
});

function spec(command: string, args: string[], over: Partial<SandboxSpec> = {}): SandboxSpec {
  return {
    command,
    args,
    env: {},
    cwd: "",
    workspaceDir: ws,
    network: "none",
    timeoutMs: 10_000,
    limits: DEFAULT_SANDBOX_LIMITS,
    ...over,
  };
}

/** How each `sh` task's Landlock rules were built, from the sandbox's debug log lines (the
 * self-test's sandbox runs another command). */
function landlockWays(lines: string[]): Array<string | undefined> {
  return lines
    .map((l) => JSON.parse(l) as { msg: string; command?: string; landlock?: string })
    .filter((l) => l.msg === "sandbox spawn" && l.command === "sh")
    .map((l) => l.landlock);
}

describe("createSandbox (real bwrap)", () => {
  const sandbox = createSandbox({});
  after(() => sandbox.close());

  it("is ready on this machine (fails loudly with the fix if not)", async () => {
    const r = await sandbox.readiness();
    assert.equal(r.problem, "");
    assert.equal(r.ready, true);
    assert.ok(r.limitLayers.includes("rlimits"));
  });

  it("runs echo hello end to end", async () => {
    const out: Buffer[] = [];
    let started = false;
    const p = await sandbox.spawn(spec("echo", ["hello"]), {
      onOutput: (stream, data) => {
        if (stream === "stdout") out.push(Buffer.from(data));
      },
      onStarted: () => {
        started = true;
      },
    });
    const r = await p.result;
    assert.equal(r.status, "completed");
    assert.equal(r.exitCode, 0);
    assert.equal(r.signal, "");
    assert.equal(Buffer.concat(out).toString(), "hello\n");
    assert.equal(started, true);
  });

  it("reports exit codes and signals", async () => {
    const r1 = await (await sandbox.spawn(spec("sh", ["-c", "exit 7"]), { onOutput: () => {} }))
      .result;
    assert.equal(r1.exitCode, 7);
    const r2 = await (
      await sandbox.spawn(spec("sh", ["-c", "kill -TERM $$"]), { onOutput: () => {} })
    ).result;
    assert.equal(r2.status, "completed");
    assert.equal(r2.signal, "SIGTERM");
    assert.equal(r2.exitCode, -1);
  });

  it("caps output per stream and sets the truncation flag", async () => {
    let bytes = 0;
    const p = await sandbox.spawn(
      spec("sh", ["-c", "head -c 100000 /dev/zero"], {
        limits: { ...DEFAULT_SANDBOX_LIMITS, maxOutputBytes: 1000 },
      }),
      { onOutput: (_s, d) => (bytes += d.length) },
    );
    const r = await p.result;
    assert.equal(bytes, 1000);
    assert.equal(r.stdoutTruncated, true);
    assert.equal(r.stderrTruncated, false);
  });

  it("cancel() kills the tree and reports cancelled", async () => {
    const p = await sandbox.spawn(spec("sleep", ["30"]), {
      onOutput: () => {},
      onStarted: () => p.cancel(),
    });
    const r = await p.result;
    assert.equal(r.status, "cancelled");
    assert.equal(r.signal, "SIGKILL");
  });

  it("a cancel at any moment of a prepared sandbox's start ends the task at once", async () => {
    // A kill that reached the launcher while bwrap was creating its sandbox's first process
    // could leave that process orphaned, holding the output pipes: the task ended only when
    // its command did (here after 30 s; ~3 % of immediate cancels on a busy runner). The
    // cancels below land before, during and after bwrap's set-up, with both cores busy (it
    // does not show on an idle machine); the SIGKILL grace is longer than the wait, so only
    // the launcher's own handling of the cancel can pass.
    const sb = createSandbox({ preparedSandboxes: 2, killGraceMs: 60_000 });
    const hogs = [0, 1].map(() => spawn(process.execPath, ["-e", "for(;;);"], { stdio: "ignore" }));
    try {
      const slow: string[] = [];
      for (let i = 0; i < 150; i++) {
        const p = await sb.spawn(spec("sleep", ["30"]), { onOutput: () => undefined });
        const delayUs = (i % 50) * 250;
        const until = performance.now() + delayUs / 1000;
        while (performance.now() < until) {
          // a busy wait: timers are too coarse for bwrap's set-up
        }
        p.cancel();
        const r = await Promise.race([
          p.result,
          new Promise<null>((r) => setTimeout(() => r(null), 15_000).unref()),
        ]);
        if (r === null) slow.push(`#${i} (cancel ${delayUs} µs after spawn): no result in 15 s`);
        else if (r.status !== "cancelled") slow.push(`#${i}: ${r.status} ${r.message}`);
        if (slow.length > 0) break;
      }
      assert.deepEqual(slow, []);
    } finally {
      for (const h of hogs) h.kill("SIGKILL");
      await sb.close();
    }
  });

  it("a prepared launcher runs exactly one task, in its own cgroup, under that task's limits", async () => {
    // Launchers only: a prepared sandbox (ADR 0028), when one is ready first, would take the task.
    const sb = createSandbox({ preparedSandboxes: 2, preparedNamespaces: false });
    try {
      // The first task finds the pool empty and has it prepare launchers behind it.
      await (await sb.spawn(spec("true", []), { onOutput: () => undefined })).result;
      await new Promise((r) => setTimeout(r, 500));
      const seen: Array<{ launcher: number; cgroup: string }> = [];
      for (const memoryBytes of [96 << 20, 80 << 20]) {
        let onStarted: () => void = () => undefined;
        const running = new Promise<void>((r) => {
          onStarted = r;
        });
        const p = await sb.spawn(
          spec("sleep", ["5"], { limits: { ...DEFAULT_SANDBOX_LIMITS, memoryBytes } }),
          { onOutput: () => undefined, onStarted },
        );
        // A prepared launcher reads its command line from its pipe: "-- @" (and the Landlock
        // policy it prebuilt rules for), never bwrap's command line.
        const cmdline = readFileSync(`/proc/${p.pid}/cmdline`, "utf8").split("\0");
        const at = cmdline.indexOf("--");
        assert.equal(cmdline[at + 1], "@", "the task took a prepared launcher");
        assert.ok(!cmdline.some((a) => a.endsWith("bwrap")), cmdline.join(" "));
        await running;
        const [bwrap] = readFileSync(`/proc/${p.pid}/task/${p.pid}/children`, "utf8")
          .trim()
          .split(" ");
        const lines = readFileSync(`/proc/${bwrap}/cgroup`, "utf8").split("\n");
        const v1 = lines.find((l) => /^\d+:memory:/.test(l));
        const path = v1
          ? v1.split(":")[2]
          : (lines.find((l) => l.startsWith("0::")) ?? "").slice(3);
        const limitFile = v1
          ? `/sys/fs/cgroup/memory${path}/memory.limit_in_bytes`
          : `/sys/fs/cgroup${path}/memory.max`;
        assert.equal(readFileSync(limitFile, "utf8").trim(), String(memoryBytes));
        seen.push({ launcher: p.pid, cgroup: path ?? "" });
        p.cancel();
        assert.equal((await p.result).status, "cancelled");
      }
      assert.notEqual(seen[0]?.launcher, seen[1]?.launcher, "one launcher per task");
      assert.notEqual(seen[0]?.cgroup, seen[1]?.cgroup, "one cgroup per task");
    } finally {
      await sb.close();
    }
  });

  it("a prepared launcher's prebuilt Landlock rules hold exactly as rules built in the sandbox", async () => {
    // The first task of a policy builds its rules inside the sandbox; launchers prepared after it
    // build that policy's program-directory rules ahead (ADR 0024). Both must refuse and allow
    // the same. List mode is never prebuilt (names resolve differently on the host).
    const lines: string[] = [];
    const logger = pino({ level: "debug" }, { write: (l: string) => lines.push(l) });
    const sb = createSandbox({ preparedSandboxes: 2, logger });
    const ways = () => landlockWays(lines);
    const run = async (exec: SandboxExecPolicy, script: string) => {
      let out = "";
      const refused: string[] = [];
      const p = await sb.spawn(spec("sh", ["-c", script], { exec }), {
        onOutput: (_s, c) => {
          out += c.toString();
        },
        onRefusal: (r) => refused.push(r.kind),
      });
      const r = await p.result;
      assert.equal(r.status, "completed", r.message);
      // A replacement member is prepared (for this policy) after each result.
      await new Promise((res) => setTimeout(res, 300));
      return { out, refused };
    };
    const denyDd: SandboxExecPolicy = {
      allowedPrograms: null,
      notAllowedReason: "not listed",
      deniedPrograms: { dd: "no raw copies" },
      deniedPrefixes: {},
      workspaceExec: true,
      tmpExec: true,
      noexecReason: "no",
    };
    const listed: SandboxExecPolicy = { ...denyDd, allowedPrograms: ["sh", "echo"] };
    try {
      for (const [exec, script] of [
        [denyDd, "echo ok; dd if=/dev/null of=/dev/null; echo rc=$?"],
        [listed, "echo ok; cat /dev/null; echo rc=$?"],
      ] as const) {
        for (let i = 0; i < 4; i++) {
          const { out, refused } = await run(exec, script);
          assert.match(out, /^ok$/m, `task ${i}: the allowed programs run`);
          assert.match(out, /rc=126\n/, `task ${i}: the refused one does not`);
          assert.ok(refused.length > 0, `task ${i}: the refusal is reported`);
        }
      }
    } finally {
      await sb.close();
    }
    const [deny, list] = [ways().slice(0, 4), ways().slice(4)];
    assert.equal(deny[0], "in-sandbox", `the first task of a policy: ${deny}`);
    assert.ok(deny.filter((w) => w === "prebuilt").length >= 2, `then prebuilt rules: ${deny}`);
    assert.deepEqual(list, ["in-sandbox", "in-sandbox", "in-sandbox", "in-sandbox"]);
  });

  it("prebuilt rules that went stale (a program directory changed since) are not used", {
    skip: process.getuid?.() !== 0 ? "writes into /usr/local/bin (root)" : false,
  }, async () => {
    // A program allowed when the member built its rules, denied by the time the task runs
    // (here: a denied name that now links to it, as an alternative switched under it).
    const dir = "/usr/local/bin";
    const probe = join(dir, `mcpg-probe-${process.pid}`);
    const alias = join(dir, `mcpg-denied-${process.pid}`);
    mkdirSync(dir, { recursive: true });
    copyFileSync("/bin/true", probe);
    chmodSync(probe, 0o755);
    const lines: string[] = [];
    const logger = pino({ level: "debug" }, { write: (l: string) => lines.push(l) });
    const sb = createSandbox({ preparedSandboxes: 2, logger });
    const exec: SandboxExecPolicy = {
      allowedPrograms: null,
      notAllowedReason: "not listed",
      deniedPrograms: { [basename(alias)]: "denied in this test" },
      deniedPrefixes: {},
      workspaceExec: true,
      tmpExec: true,
      noexecReason: "no",
    };
    const run = async () => {
      let out = "";
      const p = await sb.spawn(spec("sh", ["-c", `${basename(probe)}; echo rc=$?`], { exec }), {
        onOutput: (_s, c) => {
          out += c.toString();
        },
      });
      assert.equal((await p.result).status, "completed");
      return out;
    };
    try {
      assert.match(await run(), /rc=0/, "allowed while no denied name points at it");
      await new Promise((res) => setTimeout(res, 500)); // a member prebuilds this policy
      symlinkSync(basename(probe), alias);
      assert.match(await run(), /rc=126/, "denied now, although the member's rules allowed it");
    } finally {
      await sb.close();
      rmSync(alias, { force: true });
      rmSync(probe, { force: true });
    }
    const ways = landlockWays(lines);
    assert.deepEqual(ways, ["in-sandbox", "prebuilt"], "the runner offered the stale rules");
  });

  it("reports a missing command as exit code 127", async () => {
    const r = await (await sandbox.spawn(spec("no-such-command-xyz", []), { onOutput: () => {} }))
      .result;
    assert.equal(r.exitCode, 127);
  });

  it("rejects invalid specs before spawning", async () => {
    await assert.rejects(
      sandbox.spawn(spec("true", [], { cwd: "../.." }), { onOutput: () => {} }),
      SandboxSpecError,
    );
    await assert.rejects(
      sandbox.spawn(spec("true", [], { env: { LD_PRELOAD: "/x.so" } }), { onOutput: () => {} }),
      SandboxSpecError,
    );
  });

  it("ordinary tools work under the allowlist: bash, coreutils, awk, python3, node, gcc", async () => {
    let out = "";
    const script = [
      "awk 'BEGIN{print 1+1}'",
      "python3 -c 'import subprocess,multiprocessing as m; print(m.Pool(2).map(abs,[-1,-2]), subprocess.run([\"true\"]).returncode)'",
      "node -e 'console.log(require(\"os\").userInfo().username)'",
      "printf 'int main(){return 3;}' > t.c && gcc t.c -o t && ./t; echo rc=$?",
    ].join("; ");
    const p = await sandbox.spawn(spec("bash", ["-c", script], { timeoutMs: 30_000 }), {
      onOutput: (stream, data) => {
        if (stream === "stdout") out += Buffer.from(data).toString();
      },
    });
    const r = await p.result;
    assert.equal(r.status, "completed");
    assert.equal(out, "2\n[1, 2] 0\nsandbox\nrc=3\n");
  });

  it("a bwrap setup failure (missing workspace) is reported as failed, with bwrap's message", async () => {
    const p = await sandbox.spawn(spec("true", [], { workspaceDir: "/nonexistent/ws" }), {
      onOutput: () => {},
    });
    const r = await p.result;
    assert.equal(r.status, "failed");
    assert.equal(r.exitCode, -1);
    assert.match(r.message, /sandbox setup failed.*\/nonexistent\/ws/);
  });

  it("refuses to run when bwrap is missing, saying how to fix it", async () => {
    const broken = createSandbox({ bwrapPath: "/nonexistent/bwrap" });
    const r = await broken.readiness();
    assert.equal(r.ready, false);
    assert.match(r.problem, /bubblewrap not found.*apt-get install bubblewrap/);
    await assert.rejects(broken.spawn(spec("true", []), { onOutput: () => {} }), (err: unknown) => {
      assert.ok(err instanceof SandboxUnavailableError);
      assert.equal(err.code, "sandbox_unavailable");
      return true;
    });
  });

  it("refuses to run when the native helper is missing", async () => {
    const broken = createSandbox({ helperPath: "/nonexistent/helper" });
    const r = await broken.readiness();
    assert.equal(r.ready, false);
    assert.match(r.problem, /build-native\.sh/);
  });
});

/** Our slot mounts: the slots tmpfs ("mcpg-slots:<our pid>") and the workspaces on its slots. */
function slotMounts(): { tmpfs: string[]; binds: string[] } {
  const lines = readFileSync("/proc/self/mountinfo", "utf8").split("\n");
  const tmpfs = lines
    .filter((l) => l.includes(` - tmpfs mcpg-slots:${process.pid} `))
    .map((l) => l.split(" ")[4] ?? "");
  const binds = lines.filter((l) =>
    tmpfs.some((dir) => (l.split(" ")[4] ?? "").startsWith(`${dir}/`)),
  );
  return { tmpfs, binds };
}

async function until(check: () => boolean, ms = 3000): Promise<boolean> {
  const end = Date.now() + ms;
  while (!check()) {
    if (Date.now() > end) return false;
    await new Promise((r) => setTimeout(r, 20));
  }
  return true;
}

describe("prepared sandboxes (ADR 0028: set up ahead, the workspace mounted on a slot)", {
  skip: !isRoot && "the slot mounts need root",
}, () => {
  const slotDirs = () => {
    try {
      return readdirSync("/run/mcpg-slots");
    } catch {
      return [];
    }
  };
  const slotsBefore = new Set(slotDirs());
  const sandbox = createSandbox({});
  const workspaces: string[] = [];
  function workspace(): string {
    const dir = join(ws, `prepared-${workspaces.length}`);
    mkdirSync(dir);
    chownSync(dir, 65534, 65534);
    workspaces.push(dir);
    return dir;
  }
  async function sh(
    script: string,
    over: Partial<SandboxSpec> = {},
  ): Promise<{ out: string; start: string | undefined; status: string; message: string }> {
    let out = "";
    const p = await sandbox.spawn(spec("sh", ["-c", script], over), {
      onOutput: (_s, data) => {
        out += Buffer.from(data).toString();
      },
    });
    const r = await p.result;
    return { out, start: p.start, status: r.status, message: r.message };
  }
  /** Runs tasks until one starts in a prepared sandbox (the first ones start the pool). */
  async function inPrepared(script: string, over: Partial<SandboxSpec> = {}) {
    for (let i = 0; i < 20; i++) {
      const r = await sh(script, over);
      if (r.start === "prepared-sandbox") return r;
      await new Promise((res) => setTimeout(res, 100));
    }
    assert.fail("no task started in a prepared sandbox");
  }

  it("runs a task in its own workspace, nosuid and nodev, with its env and cwd, nothing else", async () => {
    const a = workspace();
    mkdirSync(join(a, "sub"));
    writeFileSync(join(a, "sub", "mine"), "A\n");
    chownSync(join(a, "sub"), 65534, 65534);
    const r = await inPrepared(
      "pwd; echo \"$GREETING\"; cat mine; ls -A /workspace; env | sort | tr '\\n' ' '; echo; grep ' /workspace ' /proc/self/mountinfo | tail -1",
      { workspaceDir: a, cwd: "sub", env: { GREETING: "hello there" } },
    );
    assert.equal(r.status, "completed", r.message);
    const [pwd, greeting, mine, listing, env, mount] = r.out.split("\n");
    assert.equal(pwd, "/workspace/sub");
    assert.equal(greeting, "hello there");
    assert.equal(mine, "A");
    assert.equal(listing, "sub");
    assert.match(env ?? "", /GREETING=hello there/);
    assert.doesNotMatch(env ?? "", /PWD=\/ |SANDBOX|MCPG|NODE/);
    // The task's workspace is the top mount at /workspace, with bwrap's own bind flags.
    assert.match(mount ?? "", /^\S+ \S+ \S+ \S+ \/workspace rw,nosuid,nodev/);
  });

  it("tasks at once each see their own workspace only; nothing stays mounted after them", async () => {
    await inPrepared("true", { workspaceDir: workspace() });
    await until(() => false, 300); // (members are set up again meanwhile)
    const dirs = [workspace(), workspace(), workspace()];
    const runs = await Promise.all(
      dirs.map((d, i) =>
        sh(`echo ${i} > /workspace/own-${i}; sleep 0.2; ls /workspace`, { workspaceDir: d }),
      ),
    );
    runs.forEach((r, i) => {
      assert.equal(r.status, "completed", r.message);
      assert.equal(r.out, `own-${i}\n`);
      assert.equal(readFileSync(join(dirs[i] ?? "", `own-${i}`), "utf8"), `${i}\n`);
    });
    assert.ok(runs.some((r) => r.start === "prepared-sandbox"));
    // Each slot is unmounted and removed once its task has ended.
    assert.ok(await until(() => slotMounts().binds.length === 0), "a workspace stayed on a slot");
  });

  it("cannot unmount its workspace or reach another slot", async () => {
    const r = await inPrepared(
      "umount /workspace 2>&1 || echo refused; ls -A /workspace; ls / | tr '\\n' ' '",
      { workspaceDir: workspace() },
    );
    assert.match(r.out, /refused/);
    assert.doesNotMatch(r.out, /mcpg-slots|\bs\d+-\d+\b/);
  });

  it("a missing cwd or workspace fails the task with a clear message", async () => {
    const r1 = await inPrepared("true", { workspaceDir: workspace() });
    assert.equal(r1.status, "completed");
    await until(() => false, 300);
    const cwd = await sh("true", { workspaceDir: workspace(), cwd: "no/such/dir" });
    assert.equal(cwd.status, "failed");
    assert.match(cwd.message, /sandbox setup failed.*no\/such\/dir/);
    await until(() => false, 300);
    const gone = await sh("true", { workspaceDir: join(ws, "never-made") });
    assert.equal(gone.status, "failed");
    assert.match(gone.message, /sandbox setup failed.*never-made/);
  });

  it("tasks a prepared sandbox cannot hold start another way", async () => {
    const r = await sh("true", { workspaceDir: workspace(), readOnlyPaths: [ws] });
    assert.equal(r.status, "completed");
    assert.notEqual(r.start, "prepared-sandbox");
  });

  it("close() detaches the slots and removes their directory", async () => {
    assert.equal(slotMounts().tmpfs.length, 1);
    await sandbox.close();
    assert.ok(await until(() => slotMounts().tmpfs.length === 0), "the slots tmpfs stayed");
    assert.ok(
      await until(() => slotDirs().every((n) => slotsBefore.has(n))),
      "the slots directory stayed",
    );
  });
});
