/**
 * `mcp-gateway runner --check`: everything a runner host needs, checked before the service
 * starts, each problem printed with what to do about it. The VM bootstrap
 * (infra/terraform/modules/runner) runs it and stops when it fails.
 *
 * @module
 */
import { X509Certificate } from "node:crypto";
import { accessSync, constants, existsSync, readFileSync, statSync } from "node:fs";
import { connect, type PeerCertificate } from "node:tls";
import { createLogger } from "@mcp-gateway/common/logger";
import { createPolicyEngine } from "@mcp-gateway/common/policy";
import {
  loadTlsMaterial,
  peerIdentities,
  runnerIdentity,
  type TlsMaterial,
  TRUST_DOMAIN,
} from "@mcp-gateway/common/tls";
import type { RunnerConfig } from "./config.js";
import { assertTraversable } from "./runner.js";
import { createSandbox } from "./sandbox/index.js";

/** One line of the report. */
export interface CheckFinding {
  /** "ok": fine; "warn": works, but worth a look; "fail": the runner cannot serve as configured. */
  level: "ok" | "warn" | "fail";
  /** What was checked: "config", "certificate", "sandbox", "cgroups", "edge <url>" … */
  subject: string;
  /** What was found, and for problems what to do. */
  detail: string;
}

/** Options of {@link checkRunner}. */
export interface CheckRunnerOptions {
  /** Keys of the config file the schema does not know (reported as likely typos). */
  unknownKeys?: readonly string[];
  /** Try a TLS handshake with every edge (default true). */
  probeEdges?: boolean;
  /** Handshake timeout per edge, ms (default 5000). */
  edgeTimeoutMs?: number;
  /** Text of /proc/self/cgroup (tests). */
  selfCgroup?: string;
  /** Where cgroup hierarchies are mounted (tests; default /sys/fs/cgroup). */
  cgroupRoot?: string;
  /** Skip the sandbox self-test (tests of the other checks). */
  skipSandbox?: boolean;
  /** Current time (tests). */
  now?: Date;
}

const SERVER_AUTH = "1.3.6.1.5.5.7.3.1";
const CLIENT_AUTH = "1.3.6.1.5.5.7.3.2";
const DAY_MS = 86_400_000;

/**
 * Checks a parsed runner configuration on this host and returns one finding per subject, in
 * order: config, certificate, policy bundle, workspace root, sandbox (bubblewrap + the seccomp
 * helper, by running a real sandboxed process), cgroup delegation, then each edge (an mTLS
 * handshake with the runner's own certificate). Never throws.
 *
 * @example
 * const findings = await checkRunner(runnerConfigSchema.parse(json));
 * if (findings.some((f) => f.level === "fail")) process.exitCode = 1;
 */
export async function checkRunner(
  config: RunnerConfig,
  options: CheckRunnerOptions = {},
): Promise<CheckFinding[]> {
  const out: CheckFinding[] = [];
  const add = (level: CheckFinding["level"], subject: string, detail: string) =>
    out.push({ level, subject, detail });
  const now = options.now ?? new Date();

  // --- config --------------------------------------------------------------------------------
  add(
    "ok",
    "config",
    `runner ${config.id} on ${config.host}:${config.port}, ${config.edges.length} edge(s), allowed edges ${config.allowedEdges.join(", ")}`,
  );
  for (const key of options.unknownKeys ?? []) {
    add("warn", "config", `unknown key "${key}" is ignored (a typo, or a newer runner's setting?)`);
  }
  if (config.edges.length === 0) {
    add(
      "warn",
      "config",
      "edges is empty: the runner registers with no edge, so only edges that list it in their own runners configuration send it work",
    );
  }
  if (
    config.advertiseUrl === undefined &&
    config.edges.length > 0 &&
    ["0.0.0.0", "::", ""].includes(config.host)
  ) {
    add(
      "warn",
      "config",
      `advertiseUrl is not set: edges are told https://${config.host}:${config.port}, which they cannot dial; set advertiseUrl (or MCP_GATEWAY_RUNNER_ADVERTISE_URL)`,
    );
  }

  // --- certificate ---------------------------------------------------------------------------
  let material: TlsMaterial | undefined;
  if (!config.tls) {
    add(
      "warn",
      "certificate",
      `no tls configured: the runner would create a development CA in ${config.dataDir}/pki — never in production (docs/operations/runners-on-vms.md, Certificates)`,
    );
  } else {
    try {
      material = loadTlsMaterial(config.tls);
      for (const f of certificateFindings(config, material, now))
        add(f.level, "certificate", f.detail);
    } catch (err) {
      add("fail", "certificate", (err as Error).message);
    }
  }

  // --- policy bundle -------------------------------------------------------------------------
  if (!existsSync(config.policyBundle)) {
    add("fail", "policy", `policy bundle ${config.policyBundle} does not exist`);
  } else {
    const engine = await createPolicyEngine({
      bundlePath: config.policyBundle,
      logger: createLogger({ name: "runner-check", level: "silent" }),
      pollIntervalMs: 0,
    }).catch((err: unknown) => err as Error);
    if (engine instanceof Error) {
      add(
        "fail",
        "policy",
        `policy bundle ${config.policyBundle} does not load: ${engine.message}`,
      );
    } else {
      const revision = engine.revision();
      engine.close();
      if (revision === "")
        add("fail", "policy", `policy bundle ${config.policyBundle} does not load (corrupt?)`);
      else add("ok", "policy", `bundle ${config.policyBundle}, revision ${revision}`);
    }
  }

  // --- workspace root ------------------------------------------------------------------------
  const workspaceRoot = config.workspaceRoot ?? `${config.dataDir}/workspaces`;
  let existing = workspaceRoot;
  while (!existsSync(existing) && existing !== "/")
    existing = existing.replace(/\/[^/]*$/, "") || "/";
  try {
    accessSync(existing, constants.W_OK);
    if (process.getuid?.() === 0) assertTraversable(existing, config.sandboxUid, config.sandboxGid);
    add(
      "ok",
      "workspaces",
      `${workspaceRoot}${existing === workspaceRoot ? "" : " (created at start)"}`,
    );
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    add(
      "fail",
      "workspaces",
      e.code === "EACCES" || e.code === "EROFS"
        ? `${existing} is not writable by this user: the runner cannot create ${workspaceRoot}`
        : e.message,
    );
  }

  // --- sandbox (bwrap, seccomp helper): a real sandboxed process -----------------------------
  if (!options.skipSandbox) {
    // Cgroups off here: the self-test must not reshape this shell's cgroup; delegation is
    // diagnosed below without writing anything.
    const sandbox = createSandbox({
      ...(config.bwrapPath ? { bwrapPath: config.bwrapPath } : {}),
      ...(config.helperPath ? { helperPath: config.helperPath } : {}),
      sandboxUid: config.sandboxUid,
      sandboxGid: config.sandboxGid,
      cgroups: "off",
    });
    const r = await sandbox.readiness();
    await sandbox.close();
    if (r.ready)
      add(
        "ok",
        "sandbox",
        `${r.bwrapVersion}, the seccomp helper and a sandboxed test process work`,
      );
    else add("fail", "sandbox", r.problem);
  }

  // --- cgroups -------------------------------------------------------------------------------
  const cg = diagnoseCgroups(options.selfCgroup, options.cgroupRoot ?? "/sys/fs/cgroup");
  if (config.cgroups === "off") {
    add(
      config.requireCgroups ? "fail" : "warn",
      "cgroups",
      config.requireCgroups
        ? 'cgroups is "off" but requireCgroups is true: every task would be refused'
        : 'cgroups is "off": tasks are bounded by rlimits only (no per-task memory incl. shmem, no pids cgroup)',
    );
  } else if (cg.usable) {
    add("ok", "cgroups", cg.detail);
  } else {
    const inUnit = /mcp-gateway-runner\.service/.test(cg.own);
    const hint = inUnit
      ? "the unit needs Delegate=yes (and systemd's memory and pids controllers)"
      : "here, outside the service; the systemd unit's Delegate=yes gives the runner its own subtree, so this is expected when the check runs from a shell or the bootstrap";
    add(
      config.requireCgroups && inUnit ? "fail" : "warn",
      "cgroups",
      `${cg.detail}: ${hint}${config.requireCgroups ? " (requireCgroups: tasks are refused without them)" : ""}`,
    );
  }

  // --- edges: mTLS handshakes ----------------------------------------------------------------
  if (material && (options.probeEdges ?? true)) {
    const m = material;
    const results = await Promise.all(
      config.edges.map((url) => probeEdge(url, m, options.edgeTimeoutMs ?? 5000)),
    );
    config.edges.forEach((url, i) => {
      const r = results[i] ?? { ok: false, detail: "not probed" };
      add(r.ok ? "ok" : "warn", `edge ${url}`, r.detail);
    });
  }
  return out;
}

/** The certificate's identity, chain, lifetime, usages and host names against the config. */
function certificateFindings(
  config: RunnerConfig,
  material: TlsMaterial,
  now: Date,
): Array<Pick<CheckFinding, "level" | "detail">> {
  const out: Array<Pick<CheckFinding, "level" | "detail">> = [];
  const certs = pemCertificates(material.cert);
  const cas = pemCertificates(material.ca);
  const leaf = certs[0];
  if (!leaf) return [{ level: "fail", detail: "the certificate file holds no certificate" }];
  const expected = runnerIdentity(config.id);
  if (material.identity !== expected) {
    out.push({
      level: "fail",
      detail: `the certificate names ${material.identity || "no URI SAN"}, but this runner is ${config.id} (${expected}); issue one for ${expected} or set id to match`,
    });
  }
  if (!chainsTo(leaf, certs.slice(1), cas)) {
    out.push({
      level: "fail",
      detail: `the certificate (issuer ${oneLine(leaf.issuer)}) does not chain to the CA bundle ${config.tls?.caPath}: edges will refuse it`,
    });
  }
  const eku = leaf.keyUsage ?? [];
  if (eku.length > 0 && !(eku.includes(SERVER_AUTH) && eku.includes(CLIENT_AUTH))) {
    out.push({
      level: "fail",
      detail:
        "the certificate needs both extended key usages serverAuth (edges dial the runner) and clientAuth (it registers with the edges)",
    });
  }
  const left = new Date(leaf.validTo).getTime() - now.getTime();
  if (new Date(leaf.validFrom).getTime() > now.getTime()) {
    out.push({
      level: "fail",
      detail: `the certificate is not valid before ${leaf.validFrom} (clock?)`,
    });
  } else if (left < 7 * DAY_MS) {
    out.push({
      level: "warn",
      detail: `the certificate expires in ${Math.max(0, Math.floor(left / 3_600_000))} h (${leaf.validTo}): renew it; the runner reloads rotated files without a restart`,
    });
  }
  if (config.advertiseUrl) {
    const host = new URL(config.advertiseUrl).hostname.replace(/^\[|\]$/g, "");
    const named = /^[\d.]+$|:/.test(host) ? leaf.checkIP(host) : leaf.checkHost(host);
    if (!named) {
      out.push({
        level: "fail",
        detail: `the certificate does not name ${host} (advertiseUrl): edges check the host they dial; add it as a ${/^[\d.]+$|:/.test(host) ? "IP" : "DNS"} SAN`,
      });
    }
  }
  if (out.every((f) => f.level !== "fail")) {
    out.unshift({
      level: "ok",
      detail: `${expected}, issued by ${oneLine(leaf.issuer)}, valid until ${new Date(leaf.validTo).toISOString()} (${Math.floor(left / DAY_MS)} days)`,
    });
  }
  return out;
}

function pemCertificates(bytes: Buffer): X509Certificate[] {
  const pems =
    bytes.toString("utf8").match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ??
    [];
  const out: X509Certificate[] = [];
  for (const pem of pems) {
    try {
      out.push(new X509Certificate(pem));
    } catch {
      // loadTlsMaterial already refused unparsable files
    }
  }
  return out;
}

/** True when `cert` is signed by a CA in `roots`, directly or through `intermediates`. */
function chainsTo(
  cert: X509Certificate,
  intermediates: X509Certificate[],
  roots: X509Certificate[],
  depth = 0,
): boolean {
  if (roots.some((ca) => cert.checkIssued(ca) && cert.verify(ca.publicKey))) return true;
  if (depth >= 4) return false;
  return intermediates.some(
    (i) =>
      i !== cert &&
      cert.checkIssued(i) &&
      cert.verify(i.publicKey) &&
      chainsTo(i, intermediates, roots, depth + 1),
  );
}

function oneLine(dn: string): string {
  return dn.split("\n").join(", ");
}

interface CgroupDiagnosis {
  usable: boolean;
  detail: string;
  /** This process's cgroup (v2 path, or the v1 memory controller's). */
  own: string;
}

/**
 * Whether this process could create per-task cgroups, found without writing anything: a cgroup
 * v2 subtree with the memory and pids controllers and a writable cgroup.subtree_control, or
 * writable cgroup v1 memory and pids directories.
 */
function diagnoseCgroups(selfText: string | undefined, root: string): CgroupDiagnosis {
  let text = selfText;
  if (text === undefined) {
    try {
      text = readFileSync("/proc/self/cgroup", "utf8");
    } catch {
      return { usable: false, detail: "/proc/self/cgroup is unreadable", own: "" };
    }
  }
  const own = new Map<string, string>();
  for (const line of text.split("\n")) {
    const m = /^\d+:([^:]*):(.*)$/.exec(line);
    if (m) for (const c of (m[1] ?? "").split(",")) own.set(c, m[2] ?? "/");
  }
  const writable = (p: string) => {
    try {
      accessSync(p, constants.W_OK);
      return true;
    } catch {
      return false;
    }
  };
  const reasons: string[] = [];
  const v2 = own.get("");
  if (v2 !== undefined && existsSync(`${root}/cgroup.controllers`)) {
    const dir = `${root}${v2 === "/" ? "" : v2}`;
    let controllers: string[] = [];
    try {
      controllers = readFileSync(`${dir}/cgroup.controllers`, "utf8").trim().split(/\s+/);
    } catch {
      // unreadable: reported below as missing controllers
    }
    const missing = ["memory", "pids"].filter((c) => !controllers.includes(c));
    if (missing.length === 0 && writable(`${dir}/cgroup.subtree_control`))
      return {
        usable: true,
        detail: `cgroup v2 subtree ${dir} is delegated (memory, pids)`,
        own: v2,
      };
    reasons.push(
      missing.length > 0
        ? `cgroup v2 ${dir} lacks the ${missing.join(" and ")} controller(s)`
        : `cgroup v2 ${dir} is not writable (not delegated)`,
    );
  }
  const mem = own.get("memory");
  const pids = own.get("pids");
  if (mem !== undefined && pids !== undefined) {
    const memDir = `${root}/memory${mem === "/" ? "" : mem}`;
    const pidsDir = `${root}/pids${pids === "/" ? "" : pids}`;
    const ok = (d: string) => {
      try {
        return statSync(d).isDirectory() && writable(d);
      } catch {
        return false;
      }
    };
    if (ok(memDir) && ok(pidsDir))
      return {
        usable: true,
        detail: `cgroup v1 memory and pids at ${memDir}, ${pidsDir}`,
        own: mem,
      };
    reasons.push(`cgroup v1 ${memDir} or ${pidsDir} is not writable`);
  }
  return {
    usable: false,
    detail:
      reasons.length > 0
        ? `no usable cgroup (${reasons.join("; ")})`
        : "no cgroup memory and pids controllers",
    own: v2 ?? mem ?? "",
  };
}

const EDGE_ID = new RegExp(`^spiffe://${TRUST_DOMAIN}/edge/[^/]+$`);

/** An mTLS handshake with one edge's internal port, with the runner's own certificate. */
function probeEdge(
  url: string,
  m: TlsMaterial,
  timeoutMs: number,
): Promise<{ ok: boolean; detail: string }> {
  return new Promise((resolve) => {
    const u = new URL(url);
    const host = u.hostname.replace(/^\[|\]$/g, "");
    const socket = connect({
      host,
      port: Number(u.port || 443),
      ca: m.ca,
      cert: m.cert,
      key: m.key,
      minVersion: "TLSv1.3",
      ALPNProtocols: ["h2"],
      ...(/^[\d.]+$|:/.test(host) ? {} : { servername: host }),
      checkServerIdentity: (_host: string, cert: PeerCertificate) => {
        if (!peerIdentities(cert).some((id) => EDGE_ID.test(id)))
          return new Error(
            `it presents no edge identity (${peerIdentities(cert).join(", ") || "no URI SAN"})`,
          );
        return undefined;
      },
    });
    const done = (ok: boolean, detail: string) => {
      clearTimeout(timer);
      socket.destroy();
      resolve({ ok, detail });
    };
    const timer = setTimeout(
      () =>
        done(
          false,
          `no TLS handshake within ${timeoutMs} ms (firewall? edge down?); the runner keeps retrying`,
        ),
      timeoutMs,
    );
    socket.once("secureConnect", () => {
      const ids = peerIdentities(socket.getPeerCertificate());
      // TLS 1.3: the server checks our certificate after its Finished; wait a moment for a refusal.
      setTimeout(() => done(true, `mTLS handshake ok with ${ids.join(", ")}`), 200);
    });
    socket.once("error", (err: NodeJS.ErrnoException) =>
      done(
        false,
        `${err.code ?? "error"}: ${err.message}${err.code === "ECONNREFUSED" ? " (edge down, or not its internalPort?)" : ""}; the runner keeps retrying`,
      ),
    );
  });
}
