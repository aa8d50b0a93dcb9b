/**
 * Attack suite for the Landlock layer (issue 22): the command policy reads command lines
 * statically and cannot see through scripts and interpreters, so the kernel must refuse
 * what the decision forbids. Every case takes its execution rules from a real decision of
 * the shipped policy bundle (scripts/build-policy.sh), runs in a real sandbox, and checks
 * that the kernel refused (EACCES), that the payload never ran, and that the refusal was
 * reported with the path and the policy's reason — what the task's events carry.
 */
import assert from "node:assert/strict";
import { chmodSync, chownSync, mkdirSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import { pino } from "pino";
import { buildPolicyInput } from "../../common/src/authz/index.js";
import { createLogger } from "../../common/src/logger.js";
import { createPolicyEngine, type PolicyEngine } from "../../common/src/policy/index.js";
import { execPolicyOf } from "../../runner/src/exec-policy.js";
import {
  buildSandboxEnv,
  createSandbox,
  DEFAULT_SANDBOX_LIMITS,
  type ExecRefusal,
  refusalMessage,
  type SandboxExecPolicy,
  type SandboxResult,
  SandboxSpecError,
} from "../../runner/src/sandbox/index.js";
import { createWorkspaceFs } from "../../runner/src/workspace/index.js";
import { BASE, IS_ROOT, makeWorkspace, sandbox } from "./helpers.js";

const BUNDLE = fileURLToPath(new URL("../../policies/build/bundle.tar.gz", import.meta.url));
const logger = createLogger({ name: "landlock-test", level: "silent" });
let policy: PolicyEngine;

const developer = { sub: "mallory", roles: ["developer"], tenant: "acme", scopes: [] };
const restricted = {
  sub: "rita",
  roles: ["developer"],
  tenant: "example-restricted",
  scopes: [],
};

/** The policy's decision for an execute request (the edge's and runner's input). */
function decide(principal: typeof developer, command: string, args: string[], env = {}) {
  return policy.decide(
    buildPolicyInput(
      principal,
      {
        operation: "execute",
        workspace: "ws",
        command: { command, args, env, cwd: "", timeout_seconds: 10 },
        network: "none",
        sandbox: { limits: {} as never },
      },
      { protocol: "runner", traceId: "t", source: "test", metadata: {} },
    ),
  );
}

/** The execution rules the runner derives from that decision. */
function execRules(principal: typeof developer, command = "true"): SandboxExecPolicy {
  const d = decide(principal, command, []);
  assert.equal(d.allow, true, d.denyReasons.join("; "));
  const exec = execPolicyOf(d.obligations, principal.tenant);
  assert.ok(exec, "an execute decision must carry exec obligations");
  return exec;
}

interface LRun {
  result: SandboxResult;
  stdout: string;
  stderr: string;
  refusals: ExecRefusal[];
}

async function run(
  exec: SandboxExecPolicy,
  command: string,
  args: string[],
  workspaceDir = makeWorkspace(),
): Promise<LRun> {
  let stdout = "";
  let stderr = "";
  const refusals: ExecRefusal[] = [];
  const proc = await sandbox.spawn(
    {
      command,
      args,
      env: {},
      cwd: "",
      workspaceDir,
      network: "none",
      timeoutMs: 20_000,
      limits: DEFAULT_SANDBOX_LIMITS,
      exec,
    },
    {
      onOutput: (stream, data) => {
        if (stream === "stdout") stdout += Buffer.from(data).toString("utf8");
        else stderr += Buffer.from(data).toString("utf8");
      },
      onRefusal: (r) => refusals.push(r),
    },
  );
  return { result: await proc.result, stdout, stderr, refusals };
}

/** Asserts the kernel refused `path` for `reason` and the payload printed nothing. */
function assertRefused(r: LRun, path: string, reason: string | RegExp): void {
  const hit = r.refusals.find((x) => x.path === path);
  assert.ok(
    hit,
    `expected a refusal of ${path}; got ${JSON.stringify(r.refusals)}; stderr ${r.stderr}`,
  );
  if (typeof reason === "string") assert.ok(hit.reason.includes(reason), hit.reason);
  else assert.match(hit.reason, reason);
  assert.match(refusalMessage(hit), new RegExp(`refused to execute ${path}: `));
}

function writeScript(ws: string, name: string, text: string): void {
  writeFileSync(join(ws, name), text);
  chmodSync(join(ws, name), 0o755);
  if (IS_ROOT) chownSync(join(ws, name), 65534, 65534);
}

before(async () => {
  const r = await sandbox.readiness();
  assert.equal(r.problem, "", "the sandbox must be ready");
  assert.ok(
    r.landlockAbi >= 1,
    "this suite needs Landlock (CONFIG_SECURITY_LANDLOCK, lsm=landlock)",
  );
  assert.ok(r.limitLayers.includes(`landlock-abi-${r.landlockAbi}`));
  policy = await createPolicyEngine({ bundlePath: BUNDLE, logger, pollIntervalMs: 0 });
});

after(() => {
  policy?.close();
});

const DD_REASON = 'command "dd" is denied: dd writes raw blocks';

describe("denied programs are refused by the kernel, however they are started", () => {
  // Each of these ran dd on main before the Landlock layer; the payload is `dd --version`,
  // which prints "dd (coreutils)" if dd ever runs.
  const bypasses: Array<[string, string, string[]]> = [
    [
      "sh -c with a redirection first",
      "sh",
      ["-c", ">/dev/null dd --version; dd</dev/null --version"],
    ],
    ["a variable holding the name", "sh", ["-c", "x=dd; $x --version"]],
    ["eval", "bash", ["-c", "eval 'd''d --version'"]],
    ["env -S", "env", ["-S", "dd --version"]],
    ["a glob", "sh", ["-c", "/usr/bin/d[d] --version"]],
    ["bash brace expansion", "bash", ["-c", "{dd,--version}"]],
    ["python os.execvp", "python3", ["-c", "import os; os.execvp('dd', ['dd', '--version'])"]],
    ["find -exec", "find", ["/", "-maxdepth", "0", "-exec", "dd", "--version", ";"]],
    ["the dynamic loader", "sh", ["-c", "/lib64/ld-linux-x86-64.so.2 /usr/bin/dd --version"]],
  ];
  for (const [what, command, args] of bypasses) {
    it(`${what}: ${command} ${args.join(" ")}`, async () => {
      const exec = execRules(developer, command);
      const r = await run(exec, command, args);
      assert.doesNotMatch(r.stdout + r.stderr, /coreutils/, "dd ran");
      if (what === "the dynamic loader") {
        // ld.so maps dd itself: Landlock refuses opening it (no read access), not an exec.
        assert.match(r.stderr, /dd: cannot open shared object file: Permission denied/);
        return;
      }
      assertRefused(r, "/usr/bin/dd", DD_REASON);
      // The caller saw EACCES (each program words it its own way).
      assert.match(r.stderr, /Permission denied|Errno 13/, r.stderr);
    });
  }

  it("the static analysis misses these (the kernel is the boundary)", () => {
    for (const args of [
      ["-c", "x=dd; $x --version"],
      ["-c", "/usr/bin/d[d] --version"],
    ]) {
      assert.equal(decide(developer, "sh", args).allow, true);
    }
  });

  it("a denied program cannot be copied out, and mkfs.* (prefix, via symlink) is refused", async () => {
    const exec = execRules(developer, "sh");
    const r = await run(exec, "sh", [
      "-c",
      "cp /usr/bin/dd /tmp/x; echo cp=$?; mkfs.ext4 -V; echo mkfs=$?",
    ]);
    assert.match(r.stdout, /cp=1/);
    assert.match(r.stderr, /cannot open '\/usr\/bin\/dd' for reading: Permission denied/);
    assert.match(r.stdout, /mkfs=126/);
    assert.ok(
      r.refusals.some((x) => x.kind === "denied" && /formatting file systems/.test(x.reason)),
      JSON.stringify(r.refusals),
    );
  });

  it("network tools are refused when the decision has no network", async () => {
    const exec = execRules(developer, "sh");
    assert.ok(exec.deniedPrograms.curl);
    const r = await run(exec, "sh", ["-c", 'x=cur; "$x"l --version']);
    assert.doesNotMatch(r.stdout, /^curl \d/m);
    assertRefused(r, "/usr/bin/curl", /needs network access/);
  });

  it("an anonymous file (memfd) cannot be executed", async () => {
    const exec = execRules(developer, "python3");
    const r = await run(exec, "python3", [
      "-c",
      [
        "import os",
        "fd = os.memfd_create('x')",
        "os.write(fd, open('/usr/bin/true','rb').read())",
        "os.execv(f'/proc/self/fd/{fd}', ['x'])",
      ].join("\n"),
    ]);
    assert.notEqual(r.result.exitCode, 0);
    assert.match(r.stderr, /Permission denied/);
    assert.ok(
      r.refusals.some((x) => x.kind === "memfd"),
      JSON.stringify(r.refusals),
    );
  });
});

describe("a tenant with allowed_commands runs exactly its programs", () => {
  it("a 0755 script named cat in the workspace is never executed (./cat, /workspace/cat)", async () => {
    const exec = execRules(restricted, "cat");
    assert.deepEqual(exec.allowedPrograms?.includes("cat"), true);
    assert.equal(exec.workspaceExec, false);
    const ws = makeWorkspace();
    writeScript(ws, "cat", "#!/bin/sh\necho PLANTED\n");
    for (const path of ["./cat", "/workspace/cat"]) {
      const r = await run(exec, "python3", ["-c", `import os; os.execv('${path}', ['cat'])`], ws);
      assert.doesNotMatch(r.stdout, /PLANTED/);
      assertRefused(r, "/workspace/cat", /may not be executed in tenant "example-restricted"/);
    }
    // The real cat still works.
    writeFileSync(join(ws, "f"), "content\n");
    const ok = await run(exec, "cat", ["/workspace/f"], ws);
    assert.equal(ok.stdout, "content\n");
    assert.deepEqual(ok.refusals, []);
  });

  it("PATH tricks: the policy refuses PATH, the runner fixes it, the kernel refuses the file", async () => {
    const d = decide(restricted, "cat", ["x"], { PATH: "/workspace:/usr/bin" });
    assert.equal(d.allow, false);
    assert.ok(
      d.denyReasons.some((x) => x.includes("PATH is not allowed")),
      d.denyReasons.join(),
    );
    assert.throws(() => buildSandboxEnv({ PATH: "/workspace" }), SandboxSpecError);
    const exec = execRules(restricted, "python3");
    const ws = makeWorkspace();
    writeScript(ws, "cat", "#!/bin/sh\necho PLANTED\n");
    const r = await run(
      exec,
      "python3",
      ["-c", "import os; os.environ['PATH']='/workspace:/usr/bin'; os.execvp('cat', ['cat'])"],
      ws,
    );
    // execvp skipped the refused /workspace/cat (EACCES) and ran the real cat.
    assert.doesNotMatch(r.stdout, /PLANTED/);
    assert.equal(r.result.exitCode, 0);
    assertRefused(r, "/workspace/cat", /may not be executed/);
  });

  it("no program outside the list runs through any interpreter", async () => {
    const exec = execRules(restricted, "python3");
    const cases: Array<[string, string[], string]> = [
      ["python3", ["-c", "import subprocess; subprocess.run(['id'])"], "/usr/bin/id"],
      ["python3", ["-c", "import os; os.system('echo RAN')"], "/usr/bin/dash"],
      ["node", ["-e", "require('child_process').execFileSync('id')"], "/usr/bin/id"],
    ];
    for (const [command, args, refused] of cases) {
      const r = await run(exec, command, args);
      assert.doesNotMatch(r.stdout, /uid=|RAN/);
      assertRefused(
        r,
        refused,
        'the program is not in the list of commands allowed for tenant "example-restricted"',
      );
    }
  });

  it("listed programs and their interpreters run", async () => {
    const exec = execRules(restricted, "python3");
    const r = await run(exec, "python3", ["-c", "print('py ok')"]);
    assert.equal(r.stdout, "py ok\n");
    const n = await run(exec, "node", ["-e", "console.log('node ok')"]);
    assert.equal(n.stdout, "node ok\n");
  });
});

describe("workspace and /tmp without execution; writes only where the task may write", () => {
  it("with workspace_exec false, a program written to /tmp or the workspace is refused", async () => {
    const exec: SandboxExecPolicy = {
      ...execRules(developer, "sh"),
      workspaceExec: false,
      tmpExec: false,
    };
    const r = await run(exec, "sh", [
      "-c",
      "cp /usr/bin/true /tmp/t && /tmp/t; echo tmp=$?; cp /usr/bin/true /workspace/t && /workspace/t; echo ws=$?",
    ]);
    assert.match(r.stdout, /tmp=126/);
    assert.match(r.stdout, /ws=126/);
    assertRefused(r, "/tmp/t", /may not be executed/);
    assertRefused(r, "/workspace/t", /may not be executed/);
  });

  it("by default (workspace_exec true) the workspace's own programs run", async () => {
    const exec = execRules(developer, "sh");
    const r = await run(exec, "sh", ["-c", "cp /usr/bin/echo /workspace/e && /workspace/e built"]);
    assert.equal(r.stdout, "built\n");
  });

  it("nothing outside the workspace, /tmp and /dev/shm is writable, not even /proc or /dev nodes", async () => {
    const exec = execRules(developer, "sh");
    const r = await run(exec, "sh", [
      "-c",
      "echo x > /proc/self/comm; echo comm=$?; : > /dev/null; echo null=$?; mkfifo /dev/shm/f; echo fifo=$?",
    ]);
    assert.match(r.stdout, /comm=[12]/);
    assert.match(r.stdout, /null=0/);
    assert.match(r.stdout, /fifo=0/);
  });

  it("TCP connect reaches only the allowed port (the egress proxy's, ABI 4)", async () => {
    const exec = execRules(developer, "python3");
    let stdout = "";
    const proc = await sandbox.spawn(
      {
        command: "python3",
        args: [
          "-c",
          [
            "import socket",
            "for port in (3128, 80):",
            "    s = socket.socket()",
            "    try:",
            "        s.connect(('127.0.0.1', port))",
            "    except OSError as e:",
            "        print(port, e.errno)",
          ].join("\n"),
        ],
        env: {},
        cwd: "",
        workspaceDir: makeWorkspace(),
        network: "none",
        timeoutMs: 20_000,
        limits: DEFAULT_SANDBOX_LIMITS,
        exec,
        connectPorts: [3128],
      },
      {
        onOutput: (s, d) => {
          if (s === "stdout") stdout += Buffer.from(d).toString();
        },
      },
    );
    await proc.result;
    // 3128: nobody listens (ECONNREFUSED 111); 80: Landlock refuses (EACCES 13).
    assert.match(stdout, /^3128 111$/m);
    assert.match(stdout, /^80 13$/m);
  });

  it("the task cannot signal the exec supervisor or bwrap (Landlock scoping, ABI 6)", async () => {
    const exec = execRules(developer, "sh");
    const r = await run(exec, "sh", [
      "-c",
      "kill -9 1 2>/dev/null; echo k1=$?; kill -9 2 2>/dev/null; echo k2=$?; /usr/bin/dd --version",
    ]);
    assert.match(r.stdout, /k1=1/);
    assert.match(r.stdout, /k2=1/);
    // The supervisor is alive: the refusal is still reported.
    assertRefused(r, "/usr/bin/dd", DD_REASON);
  });
});

describe("workspace integrity", () => {
  const root = join(BASE, `integrity-${process.pid}`);
  const fs = createWorkspaceFs({ root, maxReadBytes: 1 << 20, maxWriteBytes: 1 << 20 });
  before(() => {
    mkdirSync(root, { mode: 0o711, recursive: true });
  });

  it("survives chmod 000 /workspace and chattr: the runner restores the root before the next use", async () => {
    const dir = await fs.ensure("w1");
    const exec = execRules(developer, "sh");
    const r = await run(
      exec,
      "sh",
      ["-c", "chattr +i /workspace 2>&1; echo chattr=$?; chmod 000 /workspace; echo chmod=$?"],
      dir,
    );
    assert.match(r.stdout, /chattr=1/); // CAP_LINUX_IMMUTABLE: never inside the sandbox
    assert.match(r.stdout, /chmod=0/); // the task may hurt itself…
    assert.equal(statSync(dir).mode & 0o777, 0);
    await fs.ensure("w1"); // …but the next task or file operation starts from 0700 again
    assert.equal(statSync(dir).mode & 0o777, 0o700);
    await fs.writeFile("w1", "a.txt", new TextEncoder().encode("ok"), {
      createParents: false,
      mode: 0o644,
    });
    const next = await run(exec, "cat", ["/workspace/a.txt"], await fs.ensure("w1"));
    assert.equal(next.stdout, "ok");
  });

  it("file operations cannot delete .git or .ssh, nor plant a .git file with gitdir:", () => {
    for (const [operation, path, mode] of [
      ["delete_file", ".git", "delete"],
      ["write_file", ".git", "write"],
      ["write_file", "gd/.git", "write"],
      ["write_file", ".git/config", "write"],
      ["list_directory", ".ssh", "list"],
      ["delete_file", ".ssh", "delete"],
    ] as const) {
      const d = policy.decide(
        buildPolicyInput(
          developer,
          { operation, workspace: "ws", file: { path, mode } },
          { protocol: "runner", traceId: "t", source: "test", metadata: {} },
        ),
      );
      assert.equal(d.allow, false, `${operation} ${path}`);
    }
  });

  it("git status in a poisoned workspace (core.fsmonitor) runs nothing the task planted from the workspace when it is noexec", async () => {
    const dir = await fs.ensure("w2");
    const exec = execRules(developer, "sh");
    // A task (not the file API, which refuses .git) plants a repository whose fsmonitor
    // is a script in the workspace; a later task of a noexec tenant runs git status.
    const plant = await run(
      exec,
      "sh",
      [
        "-c",
        "cd /workspace && git init -q . && printf '#!/bin/sh\necho PLANTED >&2\n' > evil && chmod 755 evil && git config core.fsmonitor /workspace/evil && echo planted",
      ],
      dir,
    );
    assert.match(plant.stdout, /planted/);
    const noexec: SandboxExecPolicy = { ...exec, workspaceExec: false, tmpExec: false };
    const r = await run(noexec, "git", ["-C", "/workspace", "status", "--short"], dir);
    assert.doesNotMatch(r.stdout + r.stderr, /PLANTED/);
    assertRefused(r, "/workspace/evil", /may not be executed/);
  });

  it("git_read_only: .git is mounted read-only for tasks; a symlinked or gitdir .git is refused", async () => {
    const dir = await fs.ensure("w4");
    const exec = execRules(developer, "sh");
    await run(exec, "sh", ["-c", "cd /workspace && git init -q ."], dir);
    const ro: SandboxExecPolicy = { ...exec, gitReadOnly: true };
    const r = await run(
      ro,
      "sh",
      [
        "-c",
        "cd /workspace; git config core.fsmonitor /workspace/x; echo cfg=$?; rm -rf .git; echo rm=$?; ls -d .git/objects; git status --short >/dev/null; echo status=$?",
      ],
      dir,
    );
    assert.match(r.stdout, /cfg=[1-9]/);
    assert.match(r.stdout, /rm=[1-9]/);
    assert.match(r.stdout, /\.git\/objects/);
    assert.match(r.stdout, /status=0/);
    // A task without the setting replaces .git with a link to a host directory: refused.
    await run(exec, "sh", ["-c", "cd /workspace && rm -rf .git && ln -s /etc .git"], dir);
    await assert.rejects(
      sandbox.spawn(
        {
          command: "true",
          args: [],
          env: {},
          cwd: "",
          workspaceDir: dir,
          network: "none",
          timeoutMs: 5000,
          limits: DEFAULT_SANDBOX_LIMITS,
          exec: ro,
        },
        { onOutput: () => {} },
      ),
      /\.git is not a directory/,
    );
  });

  it("deleting and recreating .git inside a task does not break the next file operation", async () => {
    const dir = await fs.ensure("w3");
    const exec = execRules(developer, "sh");
    await run(
      exec,
      "sh",
      ["-c", "cd /workspace && git init -q . && rm -rf .git && mkdir .git && chmod 000 .git"],
      dir,
    );
    await fs.ensure("w3");
    const entries = await fs.listDirectory("w3", "");
    assert.ok(entries.some((e) => e.name === ".git"));
  });
});

describe("Landlock missing", () => {
  it("is reported, and requireLandlock refuses tasks", async () => {
    const off = createSandbox({ landlock: "off", requireLandlock: true });
    const r = await off.readiness();
    assert.equal(r.ready, false);
    assert.equal(r.landlockAbi, 0);
    assert.match(r.problem, /Landlock is required \(requireLandlock: true\)/);
    await assert.rejects(
      off.spawn(
        {
          command: "true",
          args: [],
          env: {},
          cwd: "",
          workspaceDir: makeWorkspace(),
          network: "none",
          timeoutMs: 5000,
          limits: DEFAULT_SANDBOX_LIMITS,
        },
        { onOutput: () => {} },
      ),
      /Landlock is required/,
    );
    await off.close();
    const said: string[] = [];
    const logger = pino(
      { level: "warn" },
      { write: (line: string) => void said.push(JSON.parse(line).msg as string) },
    );
    const plain = createSandbox({ landlock: "off", logger });
    const p = await plain.readiness();
    assert.equal(p.ready, true);
    assert.equal(
      p.limitLayers.some((l) => l.startsWith("landlock")),
      false,
    );
    // The runner re-checks readiness every 30 s: the missing layer is said once, not each time.
    assert.equal((await plain.readiness()).ready, true);
    assert.deepEqual(
      said.filter((m) => /Landlock is not available/.test(m)),
      ["Landlock is not available: tasks run without the Landlock layer"],
    );
    await plain.close();
  });
});
