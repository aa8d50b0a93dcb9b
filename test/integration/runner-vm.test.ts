/**
 * The runner-VM bootstrap for real (issue 16): the user-data the Terraform module renders,
 * applied to a fresh Debian root the way cloud-init would (write_files, then runcmd), against the
 * release tarball `npm run build` made from this commit:
 *
 *   - the root is a podman container from the cached debootstrap base (minbase: no bubblewrap,
 *     no libseccomp, no curl, no Node.js), with its own private cgroup (as systemd's Delegate=yes
 *     gives the unit) and the host's network;
 *   - the release and a Node.js tarball are served over HTTP by the test; the bootstrap checks
 *     both SHA-256s, installs packages from the apt mirror, fetches the runner's certificate
 *     with tls_fetch_command (from a directory standing in for the operator's secret store) for
 *     the id it derives from the host name, and runs `mcp-gateway runner --check`;
 *   - the unit's ExecStart (this container has no systemd) runs the installed runner with the
 *     rendered config; it registers with a test edge over mTLS, runs a sandboxed task sent
 *     through the edge's public API, and deregisters when sent SIGTERM (the unit's KillSignal);
 *   - `systemd-analyze verify` passes on the unit as installed in that root.
 *
 * Needs podman, debootstrap (scripts/images/install-tools.sh), Go (OpenTofu) and network access
 * to the apt mirror; fails loudly when any is missing.
 */

import assert from "node:assert/strict";
import { execFile, execFileSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { chmodSync, chownSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { createServer, type Server } from "node:http";
import { type AddressInfo, createServer as createNetServer } from "node:net";
import { tmpdir } from "node:os";
import { basename, dirname, join } from "node:path";
import { test } from "node:test";
import { promisify } from "node:util";
import { ensureDevPki } from "@mcp-gateway/common/tls";
import { connectJson, ROOT, runCli, startProc, waitForTask } from "./harness.js";

const run = promisify(execFile);
const VERSION = JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8")).version as string;
const ARCH = process.arch === "arm64" ? "arm64" : "x64";
const TARBALL = join(ROOT, "dist", "release", `mcp-gateway-${VERSION}-linux-${ARCH}.tar.gz`);
const PREFIX = "vmtest";
const HOSTNAME = "vm-1";
const RUNNER_ID = `${PREFIX}-${HOSTNAME}`;

async function freePort(): Promise<number> {
  const s = createNetServer();
  await new Promise<void>((r) => s.listen(0, "127.0.0.1", r));
  const { port } = s.address() as AddressInfo;
  await new Promise((r) => s.close(r));
  return port;
}

async function sha256(path: string): Promise<string> {
  return (await run("sha256sum", [path])).stdout.split(" ")[0] ?? "";
}

/** Bash with the podman configuration of scripts/images/common.sh. */
async function podman(args: string[], timeoutMs = 120_000): Promise<string> {
  const cmd = `source scripts/images/common.sh && exec podman "$@"`;
  const { stdout } = await run("bash", ["-c", cmd, "podman", ...args], {
    cwd: ROOT,
    timeout: timeoutMs,
    maxBuffer: 64 << 20,
  });
  return stdout;
}

async function eventually<T>(
  what: string,
  f: () => Promise<T | undefined>,
  ms: number,
): Promise<T> {
  const deadline = Date.now() + ms;
  let last: unknown;
  for (;;) {
    try {
      const v = await f();
      if (v !== undefined) return v;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline)
      throw new Error(`${what} did not happen within ${ms} ms: ${String(last ?? "")}`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

test("runner VM: the module's user-data installs the release in a fresh root; the runner registers over mTLS, runs a sandboxed task and deregisters on stop", {
  timeout: 20 * 60_000,
}, async (t) => {
  assert.ok(
    (() => {
      try {
        return readFileSync(TARBALL).length > 0;
      } catch {
        return false;
      }
    })(),
    `${TARBALL} is missing: run npm run build (npm test does)`,
  );
  const work = mkdtempSync(join(tmpdir(), "mcpg-runner-vm-"));
  t.after(() => execFileSync("rm", ["-rf", work]));

  // --- tools and the fresh root ------------------------------------------------------------
  const tools = execFileSync("bash", ["scripts/install-tofu.sh"], { cwd: ROOT, encoding: "utf8" })
    .trim()
    .split("\n")
    .pop() as string;
  const rootfs = execFileSync("bash", ["scripts/runner-vm-rootfs.sh"], {
    cwd: ROOT,
    encoding: "utf8",
  });
  const baseTar = /^vm=(.+)$/m.exec(rootfs)?.[1];
  assert.ok(baseTar, `scripts/runner-vm-rootfs.sh printed no vm root: ${rootfs}`);
  const vmRoot = join(work, "vm");
  mkdirSync(vmRoot);
  execFileSync("tar", ["--numeric-owner", "-C", vmRoot, "-xf", baseTar]);
  // The cached tarball records its build directory's mode (0700) for "/"; a VM's is 0755.
  chmodSync(vmRoot, 0o755);
  writeFileSync(join(vmRoot, "etc/resolv.conf"), readFileSync("/etc/resolv.conf"));
  // No policy-rc.d on a real VM: services may start when packages are installed.
  execFileSync("rm", ["-f", join(vmRoot, "usr/sbin/policy-rc.d")]);

  // --- PKI: the edge's certificate, and the runner's in the "secret store" -----------------
  const pki = await ensureDevPki({
    dir: join(work, "pki"),
    edgeIds: ["edge-vm"],
    runnerIds: [RUNNER_ID],
    hosts: ["127.0.0.1", "localhost"],
  });
  const secrets = join(work, "secrets");
  mkdirSync(secrets, { mode: 0o700 });
  const leaf = pki.runners[RUNNER_ID];
  assert.ok(leaf);
  writeFileSync(join(secrets, `${RUNNER_ID}.crt`), readFileSync(leaf.certPath));
  writeFileSync(join(secrets, `${RUNNER_ID}.key`), readFileSync(leaf.keyPath), { mode: 0o600 });

  // --- the edge (from the source tree) with its internal registration port -----------------
  const [port, internalPort, runnerPort, httpPort] = [
    await freePort(),
    await freePort(),
    await freePort(),
    await freePort(),
  ];
  const edgeData = join(work, "edge");
  mkdirSync(edgeData);
  const edgeConfig = join(work, "edge.json");
  writeFileSync(
    edgeConfig,
    JSON.stringify({
      id: "edge-vm",
      host: "127.0.0.1",
      port,
      internalPort,
      dataDir: edgeData,
      runnerTls: { caPath: pki.caCertPath, ...pki.edges["edge-vm"] },
      // The release's own bundle: the runner re-checks with it and refuses another revision.
      policyBundle: join(
        dirname(TARBALL),
        basename(TARBALL, ".tar.gz"),
        "policies/build/bundle.tar.gz",
      ),
    }),
  );
  const { proc: edge } = await startProc(
    ["edge", "--config", edgeConfig],
    /edge listening on (\S+)/,
    {
      MCP_GATEWAY_DATA_DIR: edgeData,
    },
  );
  t.after(() => edge.stop());
  const edgeUrl = `http://127.0.0.1:${port}`;

  // --- what the VM downloads: the release and Node.js, served over HTTP ---------------------
  const nodeName = `node-${process.version}-linux-${ARCH}`;
  const nodeStage = join(work, "node-stage", nodeName, "bin");
  mkdirSync(nodeStage, { recursive: true });
  execFileSync("cp", [process.execPath, join(nodeStage, "node")]);
  const nodeTar = join(work, `${nodeName}.tar.gz`);
  execFileSync("tar", ["-C", join(work, "node-stage"), "-czf", nodeTar, nodeName]);
  const files = new Map([
    [`/${basename(TARBALL)}`, TARBALL],
    [`/${basename(nodeTar)}`, nodeTar],
  ]);
  const server: Server = createServer((req, res) => {
    const path = files.get(req.url ?? "");
    if (!path) {
      res.writeHead(404).end();
      return;
    }
    res.writeHead(200, { "content-type": "application/octet-stream" }).end(readFileSync(path));
  });
  await new Promise<void>((r) => server.listen(httpPort, "127.0.0.1", r));
  t.after(() => new Promise((r) => server.close(r)));
  const base = `http://127.0.0.1:${httpPort}`;

  // --- render the user-data with the module ------------------------------------------------
  const render = join(ROOT, "infra/terraform/modules/runner/tests/render");
  const env = {
    ...process.env,
    TF_CLI_CONFIG_FILE: join(tools, "tofurc"),
    TF_DATA_DIR: join(work, ".terraform"),
    TF_IN_AUTOMATION: "1",
  };
  const tofu = (args: string[]) =>
    execFileSync(join(tools, "tofu"), [`-chdir=${render}`, ...args], { env, encoding: "utf8" });
  writeFileSync(
    join(work, "vars.json"),
    JSON.stringify({
      release_version: VERSION,
      release_url: `${base}/${basename(TARBALL)}`,
      release_sha256: await sha256(TARBALL),
      node: {
        source: "tarball",
        tarball_url: `${base}/${basename(nodeTar)}`,
        tarball_sha256: await sha256(nodeTar),
      },
      runner_id_prefix: PREFIX,
      edges: [`https://127.0.0.1:${internalPort}`],
      allowed_edges: ["edge-vm"],
      advertise_url: `https://127.0.0.1:${runnerPort}`,
      port: runnerPort,
      tls_ca_pem: readFileSync(pki.caCertPath, "utf8"),
      tls_fetch_command:
        'cp "/srv/secrets/$MCPG_RUNNER_ID.crt" "$MCPG_TLS_DIR/runner.crt"\ncp "/srv/secrets/$MCPG_RUNNER_ID.key" "$MCPG_TLS_DIR/runner.key"',
    }),
  );
  tofu(["init", "-backend=false", "-input=false", "-no-color"]);
  const state = join(work, "render.tfstate");
  tofu([
    "apply",
    "-auto-approve",
    "-input=false",
    "-no-color",
    `-var-file=${join(work, "vars.json")}`,
    `-state=${state}`,
  ]);
  const out = JSON.parse(tofu(["output", "-json", `-state=${state}`])) as Record<
    string,
    { value: unknown }
  >;
  const writeFiles = out.write_files?.value as Array<{
    path: string;
    permissions: string;
    owner: string;
    content: string;
  }>;
  const runcmd = out.runcmd?.value as string[][];
  const unit = out.systemd_unit?.value as string;
  assert.deepEqual(runcmd, [["/usr/local/sbin/mcp-gateway-runner-bootstrap"]]);

  // --- cloud-init's part: write_files into the root --------------------------------------
  for (const f of writeFiles) {
    const p = join(vmRoot, f.path);
    mkdirSync(dirname(p), { recursive: true, mode: 0o755 });
    writeFileSync(p, f.content);
    chmodSync(p, Number.parseInt(f.permissions, 8));
    chownSync(p, 0, 0);
  }

  // --- boot the "VM" and run runcmd --------------------------------------------------------
  const name = `mcpg-vm-${randomBytes(4).toString("hex")}`;
  await podman([
    "run",
    "-d",
    "--name",
    name,
    "--hostname",
    HOSTNAME,
    "--network",
    "host",
    // A VM's root: full privileges over its own kernel view; a private cgroup namespace whose
    // root is the container's cgroup (what Delegate=yes hands the unit on a VM).
    "--privileged",
    "--cgroupns",
    "private",
    "--security-opt",
    "label=disable",
    "-v",
    `${secrets}:/srv/secrets:ro`,
    "--rootfs",
    vmRoot,
    "sleep",
    "infinity",
  ]);
  t.after(() => podman(["rm", "-f", "-t", "0", name]).catch(() => undefined));

  const boot = await run(
    "bash",
    [
      "-c",
      'source scripts/images/common.sh && exec podman exec "$1" "$2"',
      "bash",
      name,
      runcmd[0]?.[0] ?? "",
    ],
    { cwd: ROOT, timeout: 10 * 60_000, maxBuffer: 64 << 20 },
  ).catch((err: { stdout?: string; stderr?: string; message: string }) => {
    throw new Error(
      `the bootstrap failed: ${err.message}\n${err.stdout ?? ""}\n${err.stderr ?? ""}`,
    );
  });
  const bootLog = `${boot.stdout}${boot.stderr}`;
  t.diagnostic(
    bootLog
      .split("\n")
      .filter((l) => l.startsWith("mcp-gateway-bootstrap:") || /^(ok|warn|FAIL) /.test(l))
      .join("\n"),
  );
  assert.match(bootLog, /SHA-256 verified/);
  assert.match(
    bootLog,
    new RegExp(`runner ${RUNNER_ID}, advertised as https://127\\.0\\.0\\.1:${runnerPort}`),
  );
  assert.match(bootLog, /runner check passed/);
  assert.match(bootLog, /systemd is not running/);
  assert.doesNotMatch(bootLog, /^FAIL /m);

  // Installed as the bootstrap promises: root-owned release, key 0600, config 0640.
  const stat = await podman([
    "exec",
    name,
    "stat",
    "-c",
    "%a %U %n",
    "/etc/mcp-gateway/pki/runner.key",
    "/etc/mcp-gateway/runner.json",
    "/opt/mcp-gateway/current/dist/runner.mjs",
  ]);
  assert.match(stat, /^600 root \/etc\/mcp-gateway\/pki\/runner\.key$/m);
  assert.match(stat, /^640 root \/etc\/mcp-gateway\/runner\.json$/m);
  assert.match(stat, /^7\d\d root \/opt\/mcp-gateway\/current\/dist\/runner\.mjs$/m);

  // --- systemd-analyze verify on the unit as installed ------------------------------------
  const verify = await run("systemd-analyze", [
    "verify",
    `--root=${vmRoot}`,
    "/etc/systemd/system/mcp-gateway-runner.service",
  ]).catch((err: { stderr?: string; message: string }) => ({
    stdout: "",
    stderr: `${err.message}\n${err.stderr ?? ""}`,
    failed: true,
  }));
  assert.ok(!("failed" in verify), `systemd-analyze verify failed:\n${verify.stderr}`);
  assert.doesNotMatch(
    verify.stderr,
    /mcp-gateway-runner\.service/,
    `systemd-analyze verify complained:\n${verify.stderr}`,
  );

  // --- start the runner as the unit would (ExecStart, its environment) ---------------------
  const execStart = /^ExecStart=(.+)$/m.exec(unit)?.[1];
  const environment = /^Environment=(.+)$/m.exec(unit)?.[1];
  assert.ok(execStart && environment);
  const script = `set -a; ${environment.split(" ").join("; ")}; . /etc/mcp-gateway/runner.env; set +a; echo $$ > /run/runner.pid; exec ${execStart} >/var/log/runner.log 2>&1`;
  await podman(["exec", "-d", name, "bash", "-c", script]);

  // Registered over mTLS: the edge sends it a task through its public API.
  const tokenRun = await runCli(
    ["token", "--sub", "vm-test", "--roles", "developer", "--ttl", "10m"],
    {
      MCP_GATEWAY_DATA_DIR: edgeData,
    },
  );
  const token = tokenRun.stdout.trim();
  assert.ok(token, tokenRun.stderr);
  let lastTask: Record<string, unknown> | undefined;
  const task = await eventually(
    "a task on the VM runner",
    async () => {
      const r = await connectJson(
        edgeUrl,
        "ExecuteCommand",
        {
          command: "sh",
          args: [
            "-c",
            "echo hello-from-the-vm; id -u; test -e /etc/mcp-gateway && echo LEAK || echo confined",
          ],
          timeout: 30,
        },
        token,
      );
      if (r.status !== 200) return undefined;
      const done = await waitForTask(edgeUrl, token, String(r.body.taskId), 60_000);
      lastTask = done;
      return done.status === "TASK_STATUS_COMPLETED" ? done : undefined;
    },
    120_000,
  ).catch(async (err: Error) => {
    const log = await podman(["exec", name, "cat", "/var/log/runner.log"]).catch(() => "");
    throw new Error(
      `${err.message}\nlast task: ${JSON.stringify(lastTask)}\nrunner log:\n${log}\nedge:\n${edge.stderr()}${edge.stdout().slice(-4000)}`,
    );
  });
  const result = task.result as { stdout?: string } | undefined;
  assert.equal(task.runnerId, RUNNER_ID, "the task ran on the VM's runner");
  assert.equal(
    result?.stdout,
    "hello-from-the-vm\n1000\nconfined\n",
    "sandboxed: uid 1000 inside, host /etc/mcp-gateway invisible",
  );
  assert.match(edge.stdout(), new RegExp(`"runner":"${RUNNER_ID}"`));

  // --- stop (the unit's KillSignal): it deregisters from the edge and exits ---------------
  await podman(["exec", name, "bash", "-c", "kill -TERM $(cat /run/runner.pid)"]);
  await eventually(
    "deregistration",
    async () =>
      edge
        .stdout()
        .split("\n")
        .some(
          (l) => l.includes(`"runner":"${RUNNER_ID}"`) && l.includes('"msg":"runner deregistered"'),
        )
        ? true
        : undefined,
    30_000,
  );
  await eventually(
    "the runner's exit",
    async () => {
      try {
        await podman(["exec", name, "bash", "-c", "kill -0 $(cat /run/runner.pid)"]);
        return undefined;
      } catch {
        return true;
      }
    },
    30_000,
  );
});
