/**
 * Writes the state directory the full-stack compose file (infra/compose/full-stack.yml) mounts:
 * certificates from the dev CA (two edges, one runner, the Prometheus monitor identity, with the
 * compose service names as DNS names), the dev JWT signing key and its JWKS, the shared audit key,
 * the PostgreSQL password, the edge and runner configurations and Prometheus' configuration.
 * Each service gets its own copy of what it needs, owned by the uid it runs as (keys stay 0600).
 *
 *   node --import tsx scripts/images/stack-state.ts --dir <state dir> --prometheus-uid <uid>
 *
 * This is the development CA (docs/security/trust-model.md): a real deployment mounts
 * certificates from its own PKI and a key from its secret store at the same paths.
 */
import { randomBytes } from "node:crypto";
import {
  chmodSync,
  chownSync,
  copyFileSync,
  mkdirSync,
  readFileSync,
  writeFileSync,
} from "node:fs";
import { join, resolve } from "node:path";
import { parseArgs } from "node:util";
import { ensureDevPki } from "../../common/src/tls/index.js";
import { ensureDevSigningKey } from "../../edge/src/auth/dev-keys.js";

/** uids of the images (scripts/images/build-images.sh, infra/images/*). */
const EDGE_UID = 65532;
const RUNNER_UID = 10001;
const EDGES = ["edge-1", "edge-2"];
const RUNNER = "runner-1";

function write(path: string, text: string, uid: number, mode = 0o644): void {
  writeFileSync(path, text, { mode });
  chmodSync(path, mode);
  chownSync(path, uid, uid);
}

function copy(from: string, to: string, uid: number, mode: number): void {
  copyFileSync(from, to);
  chmodSync(to, mode);
  chownSync(to, uid, uid);
}

function dir(path: string, uid: number, mode = 0o755): string {
  mkdirSync(path, { recursive: true });
  chmodSync(path, mode);
  chownSync(path, uid, uid);
  return path;
}

const { values } = parseArgs({
  options: {
    dir: { type: "string" },
    "prometheus-uid": { type: "string" },
    "postgres-password": { type: "string" },
  },
});
if (!values.dir || !values["prometheus-uid"]) {
  throw new Error("usage: stack-state.ts --dir <dir> --prometheus-uid <uid>");
}
const root = resolve(values.dir);
const promUid = Number(values["prometheus-uid"]);
mkdirSync(root, { recursive: true });

const pki = await ensureDevPki({
  dir: join(root, "pki"),
  edgeIds: EDGES,
  runnerIds: [RUNNER],
  monitorIds: ["prometheus"],
  hosts: [...EDGES, RUNNER, "localhost", "127.0.0.1"],
});
const signing = await ensureDevSigningKey(join(root, "auth"));
const auditKey = `${randomBytes(32).toString("base64")}\n`;
const pgPassword = values["postgres-password"] ?? randomBytes(18).toString("base64url");
writeFileSync(join(root, "postgres.env"), `POSTGRES_PASSWORD=${pgPassword}\nPOSTGRES_DB=mcp\n`, {
  mode: 0o600,
});

for (const id of EDGES) {
  const d = dir(join(root, id), EDGE_UID, 0o750);
  const leaf = pki.edges[id];
  if (!leaf) throw new Error(`no certificate for ${id}`);
  copy(pki.caCertPath, join(d, "ca.crt"), EDGE_UID, 0o644);
  copy(leaf.certPath, join(d, "edge.crt"), EDGE_UID, 0o644);
  copy(leaf.keyPath, join(d, "edge.key"), EDGE_UID, 0o600);
  copy(signing.jwksPath, join(d, "jwks.json"), EDGE_UID, 0o644);
  write(join(d, "audit.key"), auditKey, EDGE_UID, 0o600);
  const config = {
    id,
    host: "0.0.0.0",
    port: 8081,
    dataDir: "/var/lib/mcp-gateway",
    databaseUrl: `postgres://postgres:${encodeURIComponent(pgPassword)}@postgres:5432/mcp`,
    auditKeyFile: "/etc/mcp-gateway/audit.key",
    runnerTls: {
      caPath: "/etc/mcp-gateway/ca.crt",
      certPath: "/etc/mcp-gateway/edge.crt",
      keyPath: "/etc/mcp-gateway/edge.key",
    },
    runners: [{ id: RUNNER, url: `https://${RUNNER}:9443` }],
    auth: { jwksFile: "/etc/mcp-gateway/jwks.json" },
  };
  write(join(d, "edge.json"), `${JSON.stringify(config, null, 2)}\n`, EDGE_UID, 0o640);
}

const r = dir(join(root, RUNNER), RUNNER_UID, 0o750);
const runnerLeaf = pki.runners[RUNNER];
if (!runnerLeaf) throw new Error(`no certificate for ${RUNNER}`);
copy(pki.caCertPath, join(r, "ca.crt"), RUNNER_UID, 0o644);
copy(runnerLeaf.certPath, join(r, "runner.crt"), RUNNER_UID, 0o644);
copy(runnerLeaf.keyPath, join(r, "runner.key"), RUNNER_UID, 0o600);
write(
  join(r, "runner.json"),
  `${JSON.stringify(
    {
      id: RUNNER,
      host: "0.0.0.0",
      port: 9443,
      dataDir: "/var/lib/mcp-gateway",
      tls: {
        caPath: "/etc/mcp-gateway/ca.crt",
        certPath: "/etc/mcp-gateway/runner.crt",
        keyPath: "/etc/mcp-gateway/runner.key",
      },
      allowedEdges: EDGES,
      allowedMonitors: ["prometheus"],
    },
    null,
    2,
  )}\n`,
  RUNNER_UID,
  0o640,
);

const p = dir(join(root, "prometheus"), promUid, 0o750);
const monitor = pki.monitors.prometheus;
if (!monitor) throw new Error("no monitor certificate");
copy(pki.caCertPath, join(p, "ca.crt"), promUid, 0o644);
copy(monitor.certPath, join(p, "prometheus.crt"), promUid, 0o644);
copy(monitor.keyPath, join(p, "prometheus.key"), promUid, 0o600);
write(
  join(p, "prometheus.yml"),
  [
    "# Written by scripts/images/stack-state.ts for infra/compose/full-stack.yml.",
    "global:",
    "  scrape_interval: 2s",
    "  evaluation_interval: 5s",
    "rule_files:",
    "  - /etc/prometheus/rules/*.yml",
    "scrape_configs:",
    "  - job_name: mcp-edge",
    "    static_configs:",
    `      - targets: [${EDGES.map((e) => `"${e}:8081"`).join(", ")}]`,
    "  - job_name: mcp-runner",
    "    scheme: https",
    "    tls_config:",
    "      ca_file: /etc/prometheus/tls/ca.crt",
    "      cert_file: /etc/prometheus/tls/prometheus.crt",
    "      key_file: /etc/prometheus/tls/prometheus.key",
    "    static_configs:",
    `      - targets: ["${RUNNER}:9443"]`,
    "",
  ].join("\n"),
  promUid,
  0o644,
);
/**
 * The runner's seccomp profile: podman's default (containers-common) with sethostname and
 * setdomainname allowed without CAP_SYS_ADMIN in the container. bubblewrap names each sandbox's
 * own UTS namespace; the kernel still demands CAP_SYS_ADMIN over the namespace's owning user
 * namespace, which the unprivileged runner has only inside the namespaces bwrap creates — never
 * over the container's own. Everything else of the default profile is kept.
 */
interface SeccompRule {
  names: string[];
  action: string;
  includes?: { caps?: string[] };
  excludes?: { caps?: string[] };
  [key: string]: unknown;
}
const profilePath = process.env.MCPG_SECCOMP_DEFAULT ?? "/usr/share/containers/seccomp.json";
const profile = JSON.parse(readFileSync(profilePath, "utf8")) as { syscalls: SeccompRule[] };
const uts = ["sethostname", "setdomainname"];
for (const rule of profile.syscalls) {
  const gated = [...(rule.includes?.caps ?? []), ...(rule.excludes?.caps ?? [])];
  if (gated.includes("CAP_SYS_ADMIN")) rule.names = rule.names.filter((n) => !uts.includes(n));
}
profile.syscalls.push({
  names: uts,
  action: "SCMP_ACT_ALLOW",
  comment: "bwrap names each sandbox's own UTS namespace (mcp-gateway runner)",
});
writeFileSync(join(root, "runner-seccomp.json"), `${JSON.stringify(profile, null, 1)}\n`);

process.stderr.write(`stack state in ${root}\n`);
