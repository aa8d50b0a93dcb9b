import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { join, resolve } from "node:path";
import { createLogger } from "@mcp-gateway/common/logger";
import {
  DEV_AUDIENCE,
  DEV_ISSUER,
  ensureDevSigningKey,
  mintDevToken,
  parseDuration,
} from "@mcp-gateway/edge/dev-keys";
import { parse, UsageError } from "../args.js";
import { DEFAULT_POLICY_BUNDLE, defaultDataDir, REPO_ROOT } from "../paths.js";

function list(value: string | undefined): string[] {
  return (value ?? "")
    .split(",")
    .map((s) => s.trim())
    .filter((s) => s !== "");
}

/** `mcp-gateway token --sub dev-user --roles developer --ttl 1h [--tenant t] [--scopes a,b]` — a dev token signed by the local key. */
export async function tokenCommand(argv: string[]): Promise<number> {
  const { values } = parse(
    argv,
    {
      sub: { type: "string" },
      roles: { type: "string" },
      tenant: { type: "string" },
      scopes: { type: "string" },
      ttl: { type: "string" },
      "data-dir": { type: "string" },
    },
    false,
  );
  if (!values.sub) throw new UsageError("token needs --sub (the subject, e.g. dev-user)");
  let ttlSeconds: number;
  try {
    ttlSeconds = parseDuration(values.ttl ?? "1h");
  } catch (err) {
    throw new UsageError(`--ttl ${values.ttl}: ${(err as Error).message}`);
  }
  const authDir = join(values["data-dir"] ?? defaultDataDir(), "auth");
  await ensureDevSigningKey(authDir);
  const token = await mintDevToken(authDir, {
    sub: values.sub,
    roles: list(values.roles),
    ...(values.tenant ? { tenant: values.tenant } : {}),
    scopes: list(values.scopes),
    ttlSeconds,
    issuer: DEV_ISSUER,
    audience: DEV_AUDIENCE,
  });
  process.stdout.write(`${token}\n`);
  return 0;
}

/**
 * Keys for `audit verify`: --audit-key-file, else $MCP_GATEWAY_AUDIT_KEY_FILE,
 * else the embedded default <data-dir>/audit/audit.key when it exists; none
 * otherwise (the caller refuses that unless --allow-unkeyed).
 */
async function auditVerifyKeys(
  file: string | undefined,
  dataDir: string | undefined,
): Promise<import("@mcp-gateway/edge/store").AuditKey[]> {
  const { loadAuditKeys, AuditKeyError, defaultAuditKeyPath } = await import(
    "@mcp-gateway/edge/store"
  );
  const explicit = file ?? process.env.MCP_GATEWAY_AUDIT_KEY_FILE;
  const path = explicit ?? defaultAuditKeyPath(dataDir ?? defaultDataDir());
  if (!explicit && !existsSync(path)) return [];
  try {
    return await loadAuditKeys(path);
  } catch (err) {
    if (err instanceof AuditKeyError) throw new UsageError(err.message);
    throw err;
  }
}

/** The edge's store: $DATABASE_URL (PostgreSQL) or the SQLite file in the data directory. */
async function auditStore(dataDir: string | undefined) {
  const databaseUrl = process.env.DATABASE_URL;
  const dir = dataDir ?? defaultDataDir();
  if (!databaseUrl && !existsSync(join(dir, "gateway.db"))) {
    throw new UsageError(
      `no gateway database at ${join(dir, "gateway.db")} (use --data-dir or DATABASE_URL)`,
    );
  }
  const { openStore } = await import("@mcp-gateway/edge/store");
  const { store } = await openStore(
    { databaseUrl, dataDir: dir },
    createLogger({ name: "cli", level: "warn" }),
  );
  return store;
}

/** `mcp-gateway audit verify [--expect-head h] [--audit-key-file f] [--allow-unkeyed]` and `mcp-gateway audit export [--since t] [--format jsonl]` */
export async function auditCommand(argv: string[]): Promise<number> {
  const [sub, ...rest] = argv;
  if (sub === "verify") {
    const { values } = parse(
      rest,
      {
        "data-dir": { type: "string" },
        "expect-head": { type: "string" },
        "audit-key-file": { type: "string" },
        "allow-unkeyed": { type: "boolean" },
        json: { type: "boolean" },
      },
      false,
    );
    const keys = await auditVerifyKeys(values["audit-key-file"], values["data-dir"]);
    if (keys.length === 0 && !values["allow-unkeyed"]) {
      // Without the key, a chain rewritten and re-hashed with plain sha256 would look intact.
      throw new UsageError(
        "no audit key: the chain cannot be authenticated without the edge's key file (--audit-key-file or MCP_GATEWAY_AUDIT_KEY_FILE); --allow-unkeyed checks an unkeyed chain's links only",
      );
    }
    const store = await auditStore(values["data-dir"]);
    try {
      const { verifyAuditRows } = await import("@mcp-gateway/edge/store");
      const verdict = await verifyAuditRows(store.auditRows(), {
        ...(values["expect-head"] ? { expectHead: values["expect-head"] } : {}),
        keys,
        requireKeyed: keys.length > 0 && !values["allow-unkeyed"],
      });
      if (values.json) {
        process.stdout.write(`${JSON.stringify(verdict)}\n`);
      } else if (verdict.ok) {
        process.stdout.write(
          `audit chain intact: ${verdict.checked} records, head ${verdict.head}\n`,
        );
      } else {
        process.stdout.write(
          `audit chain BROKEN at record ${verdict.firstBad?.seq}: ${verdict.firstBad?.reason} (${verdict.checked} records verified before it)\n`,
        );
      }
      return verdict.ok ? 0 : 1;
    } finally {
      await store.close();
    }
  }
  if (sub === "export") {
    const { values } = parse(
      rest,
      { "data-dir": { type: "string" }, since: { type: "string" }, format: { type: "string" } },
      false,
    );
    if ((values.format ?? "jsonl") !== "jsonl")
      throw new UsageError(`--format ${values.format}: only jsonl is supported`);
    const sinceMs = values.since === undefined ? undefined : Date.parse(values.since);
    if (sinceMs !== undefined && Number.isNaN(sinceMs))
      throw new UsageError(`--since ${values.since}: use an ISO 8601 time`);
    const store = await auditStore(values["data-dir"]);
    try {
      let afterSeq = 0;
      for (;;) {
        const page = await store.listAudit({
          afterSeq,
          limit: 1000,
          ...(sinceMs !== undefined ? { sinceMs } : {}),
        });
        for (const r of page) process.stdout.write(`${JSON.stringify(r)}\n`);
        if (page.length < 1000) break;
        afterSeq = page[page.length - 1]?.seq ?? afterSeq;
      }
      return 0;
    } finally {
      await store.close();
    }
  }
  throw new UsageError(
    "usage: mcp-gateway audit verify | audit export [--since t] [--format jsonl]",
  );
}

/** `mcp-gateway policy eval --input req.json [--bundle b]` and `mcp-gateway policy test` */
export async function policyCommand(argv: string[]): Promise<number> {
  const [sub, ...rest] = argv;
  if (sub === "eval") {
    const { values } = parse(
      rest,
      { input: { type: "string" }, bundle: { type: "string" } },
      false,
    );
    if (!values.input) throw new UsageError("policy eval needs --input <request.json>");
    const { evalPolicyFile } = await import("@mcp-gateway/common/policy");
    const decision = await evalPolicyFile(
      resolve(values.bundle ?? DEFAULT_POLICY_BUNDLE),
      resolve(values.input),
    );
    process.stdout.write(`${JSON.stringify(decision, null, 2)}\n`);
    return decision.allow ? 0 : 3;
  }
  if (sub === "test") {
    const r = spawnSync("bash", [join(REPO_ROOT, "scripts", "test-policy.sh")], {
      stdio: "inherit",
    });
    return r.status ?? 1;
  }
  throw new UsageError("usage: mcp-gateway policy eval --input req.json | policy test");
}
