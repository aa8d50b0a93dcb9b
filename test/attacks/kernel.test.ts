/**
 * Attacks on the kernel interface: privileges, seccomp allowlist and argument rules,
 * namespaces. Each case runs test/attacks/c/probe.c inside a real sandbox.
 */
import assert from "node:assert/strict";
import { before, describe, it } from "node:test";
import { bash, install, makeWorkspace, run, sandbox } from "./helpers.js";

let ws = "";
let probe = "";

before(async () => {
  const r = await sandbox.readiness();
  assert.equal(r.problem, "", "the sandbox must be ready (see the problem text for the fix)");
  ws = makeWorkspace();
  probe = install("probe", ws);
});

/** Runs `probe CHECK` and returns its one-line verdict ("EPERM", "ok" ...). */
async function verdict(check: string): Promise<string> {
  const r = await run(probe, [check], { workspaceDir: ws });
  assert.equal(r.result.status, "completed", r.stderr);
  const line = r.stdout.trim().split("\n").pop() ?? "";
  assert.ok(line.startsWith(`${check} `), `unexpected probe output: ${r.stdout}${r.stderr}`);
  return line.slice(check.length + 1);
}

describe("privileges", () => {
  it("has no capabilities at all and no_new_privs set, with both seccomp filters", async () => {
    const r = await bash(
      "grep -E '^(CapInh|CapPrm|CapEff|CapBnd|CapAmb|NoNewPrivs|Seccomp|Seccomp_filters):' /proc/self/status",
    );
    const f = Object.fromEntries(
      r.stdout
        .trim()
        .split("\n")
        .map((l) => l.split(/:\s+/) as [string, string]),
    );
    for (const cap of ["CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"]) {
      assert.equal(f[cap], "0000000000000000", cap);
    }
    assert.equal(f.NoNewPrivs, "1");
    assert.equal(f.Seccomp, "2");
    // bwrap's two filters, plus sandbox-init's exec-notifying filter with the Landlock layer.
    const landlock = (await sandbox.readiness()).landlockAbi > 0;
    assert.equal(f.Seccomp_filters, landlock ? "3" : "2");
  });

  it("the sandbox's PID 1 (bwrap's reaper) is filtered too", async () => {
    const r = await bash("grep -E '^(Seccomp|NoNewPrivs|CapEff):' /proc/1/status");
    assert.match(r.stdout, /Seccomp:\s+2/);
    assert.match(r.stdout, /NoNewPrivs:\s+1/);
    assert.match(r.stdout, /CapEff:\s+0000000000000000/);
  });

  it("runs as an unprivileged uid inside and cannot become root", async () => {
    const r = await bash("id -u; id -g; setpriv --reuid=0 true 2>&1 || echo refused");
    assert.equal(r.stdout.split("\n")[0], "1000");
    assert.equal(r.stdout.split("\n")[1], "1000");
    assert.match(r.stdout, /refused/);
  });
});

describe("seccomp: cross-process access", () => {
  it("ptrace(PTRACE_ATTACH) of PID 1 is denied", async () => {
    assert.equal(await verdict("ptrace-pid1"), "EPERM");
  });
  it("PTRACE_TRACEME is denied", async () => {
    assert.equal(await verdict("ptrace-traceme"), "EPERM");
  });
  it("process_vm_readv is denied", async () => {
    assert.equal(await verdict("process-vm-readv"), "EPERM");
  });
});

describe("seccomp: terminal injection", () => {
  it("TIOCSTI on our own controlling pty (which the kernel alone would allow) is denied", async () => {
    assert.equal(await verdict("tiocsti-ctty"), "EPERM");
  });
  it("TIOCSTI with garbage in the high 32 bits of the command is still denied", async () => {
    assert.equal(await verdict("tiocsti-highbits"), "EPERM");
  });
  it("TIOCLINUX is denied (a host pty would say ENOTTY)", async () => {
    assert.equal(await verdict("tioclinux"), "EPERM");
  });
  it("ordinary ioctls still work (FIONREAD on a pipe)", async () => {
    assert.equal(await verdict("ioctl-fionread"), "ok");
  });
});

describe("seccomp: namespaces and mounts", () => {
  it("unshare(CLONE_NEWUSER) is denied", async () => {
    assert.equal(await verdict("unshare-user"), "EPERM");
  });
  it("clone(CLONE_NEWUSER) is denied while plain fork works", async () => {
    assert.equal(await verdict("clone-newuser"), "EPERM");
    assert.equal(await verdict("fork"), "ok");
  });
  it("clone3 returns ENOSYS so libc falls back to the inspectable clone", async () => {
    assert.equal(await verdict("clone3"), "ENOSYS");
  });
  it("`unshare -U` (nested user namespace) fails", async () => {
    const r = await bash("unshare -U true; echo rc=$?");
    assert.match(r.stdout, /rc=1/);
    assert.match(r.stderr, /Operation not permitted/);
  });
  it("mount(2) and `mount -t tmpfs` are denied", async () => {
    assert.equal(await verdict("mount"), "EPERM");
    const r = await bash("mount -t tmpfs none /tmp 2>&1; echo rc=$?");
    assert.doesNotMatch(r.stdout, /rc=0/);
  });
  it("chroot and setns are denied", async () => {
    assert.equal(await verdict("chroot"), "EPERM");
    assert.equal(await verdict("setns"), "EPERM");
  });
});

describe("seccomp: kernel attack surface", () => {
  for (const check of [
    "io-uring-setup",
    "bpf",
    "perf-event-open",
    "userfaultfd",
    "keyctl",
    "add-key",
    "kexec-load",
    "init-module",
    "personality-noaslr",
  ]) {
    it(`${check} is denied with EPERM`, async () => {
      assert.equal(await verdict(check), "EPERM");
    });
  }
  it("personality query (used by libc/setarch) still works", async () => {
    assert.equal(await verdict("personality-query"), "ok");
  });
});

describe("seccomp: socket families", () => {
  it("AF_NETLINK and AF_PACKET sockets are denied", async () => {
    assert.equal(await verdict("socket-netlink"), "EPERM");
    assert.equal(await verdict("socket-packet"), "EPERM");
  });
  it("AF_VSOCK is denied, and high bits cannot smuggle AF_NETLINK through", async () => {
    assert.equal(await verdict("socket-vsock"), "EPERM");
    assert.equal(await verdict("socket-netlink-highbits"), "EPERM");
  });
  it("AF_UNIX and AF_INET sockets work", async () => {
    assert.equal(await verdict("socket-unix"), "ok");
    assert.equal(await verdict("socket-inet"), "ok");
  });
});

describe("seccomp: foreign ABIs", () => {
  it("the i386 ABI (int 0x80) kills the task with SIGSYS", async () => {
    const r = await run(probe, ["i386-int80"], { workspaceDir: ws });
    assert.match(r.stdout, /i386-int80 trying/);
    assert.doesNotMatch(r.stdout, /returned/);
    assert.equal(r.result.status, "completed");
    assert.equal(r.result.signal, "SIGSYS");
  });
  it("the x32 ABI kills the task with SIGSYS", async () => {
    const r = await run(probe, ["x32-getpid"], { workspaceDir: ws });
    assert.equal(r.stdout, "");
    assert.equal(r.result.signal, "SIGSYS");
  });
});
