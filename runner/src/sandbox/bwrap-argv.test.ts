import assert from "node:assert/strict";
import { describe, it } from "node:test";
import {
  buildBwrapArgv,
  egressProxyEnv,
  type HostLayout,
  preparedTaskMessage,
  SANDBOX_EGRESS_DIR,
  SANDBOX_EGRESS_PORT,
  sandboxCwd,
} from "./bwrap-argv.js";
import { BASE_SANDBOX_ENV, buildSandboxEnv } from "./env.js";
import { SandboxSpecError } from "./errors.js";
import { DEFAULT_EXEC_POLICY } from "./landlock.js";
import { DEFAULT_SANDBOX_LIMITS } from "./limits.js";
import type { SandboxSpec } from "./types.js";

const layout: HostLayout = {
  systemEntries: [
    { path: "/usr", kind: "dir" },
    { path: "/bin", kind: "symlink", target: "usr/bin" },
  ],
  etcEntries: ["/etc/ld.so.cache"],
  networkEtcEntries: ["/etc/resolv.conf", "/etc/ssl"],
  extraReadOnly: [],
  etcStubDir: "/opt/stubs",
  initPath: "/opt/init",
};

function spec(over: Partial<SandboxSpec> = {}): SandboxSpec {
  return {
    command: "echo",
    args: ["hello", "$(rm -rf /)"],
    env: {},
    cwd: "",
    workspaceDir: "/srv/ws/a",
    network: "none",
    timeoutMs: 1000,
    limits: { ...DEFAULT_SANDBOX_LIMITS, tmpBytes: 12345 },
    ...over,
  };
}

function argvFor(s: SandboxSpec): string[] {
  return buildBwrapArgv({ spec: s, env: buildSandboxEnv(s.env), layout });
}

/** Index of the first occurrence of `seq` as a contiguous run in argv. */
function indexOfSeq(argv: string[], ...seq: string[]): number {
  for (let i = 0; i + seq.length <= argv.length; i++) {
    if (seq.every((v, j) => argv[i + j] === v)) return i;
  }
  return -1;
}

describe("buildBwrapArgv: network restricted", () => {
  const forwarder = { nodePath: "/usr/bin/node", scriptPath: "/opt/egress/forwarder.cjs" };
  const restricted = spec({ network: "restricted", egress: { socketDir: "/run/egress-1" } });

  it("keeps the empty network namespace and binds only the proxy socket, node and forwarder", () => {
    const argv = buildBwrapArgv({
      spec: restricted,
      env: { ...buildSandboxEnv({}), ...egressProxyEnv() },
      layout,
      egressForwarder: forwarder,
    });
    assert.ok(!argv.includes("--share-net"));
    assert.ok(indexOfSeq(argv, "--ro-bind", "/run/egress-1", SANDBOX_EGRESS_DIR) >= 0);
    assert.ok(indexOfSeq(argv, "--ro-bind", "/usr/bin/node", "/.mcpg/node") >= 0);
    // CA certificates for HTTPS, never the host's resolver.
    assert.ok(indexOfSeq(argv, "--ro-bind", "/etc/ssl", "/etc/ssl") >= 0);
    assert.ok(!argv.includes("/etc/resolv.conf"));
    // The forwarder runs in place of the command and then runs it.
    const sep = argv.lastIndexOf("--");
    assert.deepEqual(argv.slice(argv.indexOf("/.mcpg/node", sep - 12)), [
      "/.mcpg/node",
      "--jitless",
      "--no-expose-wasm",
      "--v8-pool-size=1",
      "/.mcpg/egress-forwarder.cjs",
      "/.mcpg/egress/proxy.sock",
      "3128",
      "--",
      "echo",
      "hello",
      "$(rm -rf /)",
    ]);
    assert.ok(indexOfSeq(argv, "--setenv", "HTTPS_PROXY", "http://127.0.0.1:3128") >= 0);
    assert.ok(indexOfSeq(argv, "--setenv", "all_proxy", "http://127.0.0.1:3128") >= 0);
  });

  it("lets the task connect(2) only to the forwarder's port at Landlock ABI ≥ 4, and passes no port rule below", () => {
    const initOpts = (s: SandboxSpec, landlockAbi: number): string[] => {
      const argv = buildBwrapArgv({
        spec: s,
        env: buildSandboxEnv({}),
        layout,
        landlockAbi,
        egressForwarder: forwarder,
      });
      const init = argv.lastIndexOf("/.mcpg/init");
      return argv.slice(init + 7, argv.indexOf("--", init));
    };
    const ports = (opts: string[]) => opts.flatMap((o, i) => (o === "-n" ? [opts[i + 1]] : []));
    assert.deepEqual(ports(initOpts(restricted, 4)), [String(SANDBOX_EGRESS_PORT)]);
    assert.deepEqual(ports(initOpts(restricted, 7)), ["3128"]);
    // ABI 1–3: sandbox-init would refuse a port rule, so none is passed (the namespace holds).
    assert.deepEqual(ports(initOpts(restricted, 3)), []);
    assert.ok(initOpts(restricted, 3).includes("-L"));
    // Other networks are not restricted by Landlock; a spec's own list wins.
    assert.deepEqual(ports(initOpts(spec(), 7)), []);
    assert.deepEqual(ports(initOpts(spec({ network: "host" }), 7)), []);
    assert.deepEqual(ports(initOpts({ ...restricted, connectPorts: [3128, 8080] }, 7)), [
      "3128",
      "8080",
    ]);
  });

  it("refuses restricted without the socket or the forwarder (fail closed)", () => {
    assert.throws(() => argvFor(restricted), SandboxSpecError);
    assert.throws(
      () =>
        buildBwrapArgv({
          spec: spec({ network: "restricted" }),
          env: {},
          layout,
          egressForwarder: forwarder,
        }),
      /egress proxy socket/,
    );
  });
});

describe("buildBwrapArgv", () => {
  it("unshares every namespace, disables nested user namespaces and drops capabilities", () => {
    const argv = argvFor(spec());
    for (const flag of [
      "--unshare-all",
      "--unshare-user",
      "--disable-userns",
      "--die-with-parent",
      "--new-session",
      "--clearenv",
    ]) {
      assert.ok(argv.includes(flag), `missing ${flag}`);
    }
    assert.ok(indexOfSeq(argv, "--cap-drop", "ALL") >= 0);
    assert.ok(indexOfSeq(argv, "--uid", "1000", "--gid", "1000") >= 0);
    assert.equal(argv.includes("--share-net"), false);
  });

  it("shares the network only when asked, and then binds the resolver", () => {
    const none = argvFor(spec());
    const host = argvFor(spec({ network: "host" }));
    assert.ok(host.includes("--share-net"));
    assert.ok(indexOfSeq(host, "--ro-bind", "/etc/resolv.conf", "/etc/resolv.conf") >= 0);
    assert.equal(indexOfSeq(none, "--ro-bind", "/etc/resolv.conf", "/etc/resolv.conf"), -1);
    assert.ok(indexOfSeq(none, "--ro-bind", "/opt/stubs/hosts", "/etc/hosts") >= 0);
  });

  it("mounts system dirs read-only, stubs passwd/group, and never binds / or /etc wholesale", () => {
    const argv = argvFor(spec());
    assert.ok(indexOfSeq(argv, "--ro-bind", "/usr", "/usr") >= 0);
    assert.ok(indexOfSeq(argv, "--symlink", "usr/bin", "/bin") >= 0);
    assert.ok(indexOfSeq(argv, "--ro-bind", "/opt/stubs/passwd", "/etc/passwd") >= 0);
    for (let i = 0; i < argv.length; i++) {
      if (argv[i] === "--bind" || argv[i] === "--ro-bind") {
        assert.notEqual(argv[i + 1], "/");
        assert.notEqual(argv[i + 1], "/etc");
        assert.notEqual(argv[i + 1], "/etc/shadow");
      }
    }
    assert.equal(argv.includes("/etc/shadow"), false);
  });

  it("gives a size-limited private /tmp and binds the workspace read-write at /workspace", () => {
    const argv = argvFor(spec());
    assert.ok(indexOfSeq(argv, "--perms", "1777", "--size", "12345", "--tmpfs", "/tmp") >= 0);
    assert.ok(indexOfSeq(argv, "--bind", "/srv/ws/a", "/workspace") >= 0);
    assert.ok(indexOfSeq(argv, "--proc", "/proc") >= 0);
    assert.ok(indexOfSeq(argv, "--dev", "/dev") >= 0);
    // root and /dev read-only, after every mount
    const ro = indexOfSeq(argv, "--remount-ro", "/dev", "--remount-ro", "/");
    assert.ok(ro > indexOfSeq(argv, "--bind", "/srv/ws/a", "/workspace"));
  });

  it("passes both seccomp programs and runs the command through sandbox-init, verbatim", () => {
    const argv = argvFor(spec());
    assert.ok(indexOfSeq(argv, "--add-seccomp-fd", "3", "--add-seccomp-fd", "4") >= 0);
    const init = argv.lastIndexOf("/.mcpg/init");
    const l = DEFAULT_SANDBOX_LIMITS;
    assert.deepEqual(argv.slice(init), [
      "/.mcpg/init",
      "6",
      String(l.memoryBytes),
      String(l.maxProcesses),
      String(l.maxFileSizeBytes),
      String(l.maxOpenFiles),
      String(l.cpuSeconds),
      "--",
      "echo",
      "hello",
      "$(rm -rf /)",
    ]);
  });

  it("passes the Landlock policy to sandbox-init: denied programs, list mode, noexec dirs, ports", () => {
    const exec = {
      ...DEFAULT_EXEC_POLICY,
      deniedPrograms: { dd: "no", sudo: "no" },
      deniedPrefixes: { "mkfs.": "no" },
      workspaceExec: false,
    };
    const s = spec({ exec, connectPorts: [3128] });
    const argv = buildBwrapArgv({ spec: s, env: buildSandboxEnv({}), layout, landlockAbi: 7 });
    const init = argv.lastIndexOf("/.mcpg/init");
    const opts = argv.slice(init + 7, argv.indexOf("--", init));
    assert.deepEqual(opts, [
      "-L",
      "7",
      "-r",
      "7",
      "-d",
      "dd",
      "-d",
      "sudo",
      "-p",
      "mkfs.",
      "-w",
      "/workspace",
      "-W",
      "/tmp",
      "-W",
      "/dev/shm",
      "-n",
      "3128",
    ]);
    // List mode: only the listed programs; nothing in a writable directory is executable.
    const list = buildBwrapArgv({
      spec: spec({
        exec: { ...exec, allowedPrograms: ["cat"], tmpExec: true, workspaceExec: true },
      }),
      env: buildSandboxEnv({}),
      layout,
      landlockAbi: 7,
    });
    const l0 = list.lastIndexOf("/.mcpg/init");
    const lopts = list.slice(l0 + 7, list.indexOf("--", l0));
    assert.ok(indexOfSeq(lopts, "-l", "-a", "cat") >= 0);
    assert.ok(indexOfSeq(lopts, "-w", "/workspace", "-w", "/tmp", "-w", "/dev/shm") >= 0);
    // git_read_only: the runner's descriptor of .git bound read-only after the workspace.
    const git = buildBwrapArgv({ spec: s, env: buildSandboxEnv({}), layout, gitReadOnlyFd: 8 });
    const ws = indexOfSeq(git, "--bind", "/srv/ws/a", "/workspace");
    assert.equal(indexOfSeq(git, "--ro-bind-fd", "8", "/workspace/.git"), ws + 3);
    // Without Landlock (ABI 0) sandbox-init gets no options; invalid names are refused.
    assert.equal(argvFor(spec({ exec })).includes("-L"), false);
    assert.throws(
      () =>
        buildBwrapArgv({
          spec: spec({ exec: { ...exec, deniedPrograms: { "a b": "x" } } }),
          env: {},
          layout,
          landlockAbi: 7,
        }),
      SandboxSpecError,
    );
  });

  it("sets exactly the allowlisted environment plus the caller's variables", () => {
    const argv = argvFor(spec({ env: { FOO: "bar" } }));
    const names: string[] = [];
    for (let i = 0; i < argv.length; i++) if (argv[i] === "--setenv") names.push(argv[i + 1] ?? "");
    assert.deepEqual(names, [
      "FOO",
      "HOME",
      "LANG",
      "LOGNAME",
      "PATH",
      "SHELL",
      "TERM",
      "TMPDIR",
      "USER",
    ]);
    assert.ok(indexOfSeq(argv, "--setenv", "TERM", "dumb") >= 0);
  });

  it("chdirs inside the workspace and refuses cwds that leave it", () => {
    assert.ok(indexOfSeq(argvFor(spec({ cwd: "src/lib" })), "--chdir", "/workspace/src/lib") >= 0);
    assert.equal(sandboxCwd(""), "/workspace");
    assert.equal(sandboxCwd("a/../b"), "/workspace/b");
    assert.throws(() => sandboxCwd("../x"), SandboxSpecError);
    assert.throws(() => sandboxCwd("a/../../x"), SandboxSpecError);
    assert.throws(() => sandboxCwd("/etc"), SandboxSpecError);
    assert.throws(() => argvFor(spec({ command: "" })), SandboxSpecError);
    assert.throws(() => argvFor(spec({ args: ["a\0b"] })), SandboxSpecError);
  });
});

describe("buildSandboxEnv", () => {
  it("refuses loader and shell start-up variables and invalid names", () => {
    for (const name of [
      "LD_PRELOAD",
      "LD_LIBRARY_PATH",
      "GCONV_PATH",
      "BASH_ENV",
      "BASH_FUNC_x%%",
      "PATH",
      "GIT_CONFIG_COUNT",
      "GIT_DIR",
      "PYTHONSTARTUP",
      "NODE_OPTIONS",
      "LESSOPEN",
    ]) {
      assert.throws(() => buildSandboxEnv({ [name]: "x" }), SandboxSpecError, name);
    }
    assert.throws(() => buildSandboxEnv({ "A=B": "x" }), SandboxSpecError);
    assert.throws(() => buildSandboxEnv({ A: "x\0y" }), SandboxSpecError);
    // PATH is the runner's own, never a caller's.
    assert.equal(buildSandboxEnv({ LANG: "C" }).PATH, BASE_SANDBOX_ENV.PATH);
  });
});

describe("buildBwrapArgv / preparedTaskMessage: prepared sandboxes (ADR 0028)", () => {
  const task = spec({ cwd: "src", env: { B: "2", A: "one two" } });
  const input = { spec: task, env: buildSandboxEnv(task.env), layout, landlockAbi: 4 };

  it("puts only the shape on bwrap's command line: the slot at /workspace, no env, no command", () => {
    const argv = buildBwrapArgv({ ...input, preparedSlot: "/run/slots/s1" });
    assert.ok(indexOfSeq(argv, "--bind", "/run/slots/s1", "/workspace") >= 0);
    assert.equal(argv.includes("/srv/ws/a"), false);
    assert.equal(argv.includes("--setenv"), false);
    assert.ok(argv.includes("--clearenv"));
    assert.ok(indexOfSeq(argv, "--chdir", "/") >= 0);
    assert.ok(indexOfSeq(argv, "--size", "12345", "--tmpfs", "/tmp") >= 0);
    assert.deepEqual(argv.slice(-4), ["/.mcpg/init", "-G", "9", "6"]);
    assert.equal(argv.includes("echo"), false);
  });

  it("sends the env, cwd and exactly the cold command line's sandbox-init arguments", () => {
    const fields = preparedTaskMessage(input).toString("utf8").split("\0");
    assert.equal(fields.pop(), ""); // NUL-terminated
    const env = Object.keys(input.env)
      .sort()
      .map((k) => `${k}=${input.env[k]}`);
    assert.deepEqual(fields.slice(0, 3 + env.length), [
      "T",
      "/workspace/src",
      String(env.length),
      ...env,
    ]);
    const cold = buildBwrapArgv(input);
    const initArgs = cold.slice(cold.lastIndexOf("/.mcpg/init") + 1);
    assert.deepEqual(fields.slice(3 + env.length), initArgs);
    assert.deepEqual(initArgs.slice(-3), ["echo", "hello", "$(rm -rf /)"]);
  });

  it("refuses what a prepared sandbox cannot hold, and bad input", () => {
    assert.throws(
      () => buildBwrapArgv({ ...input, preparedSlot: "/s", gitReadOnlyFd: 8 }),
      SandboxSpecError,
    );
    assert.throws(() => buildBwrapArgv({ ...input, preparedSlot: "relative" }), SandboxSpecError);
    assert.throws(
      () => preparedTaskMessage({ ...input, spec: { ...task, args: ["a\0b"] } }),
      SandboxSpecError,
    );
    assert.throws(
      () => preparedTaskMessage({ ...input, spec: { ...task, cwd: "../out" } }),
      SandboxSpecError,
    );
  });
});
