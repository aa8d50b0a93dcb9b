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

/** Reads checkpoint lines from a file or an http(s) URL. */
async function readCheckpointSource(source: string): Promise<string> {
  if (/^https?:\/\//.test(source)) {
    const res = await fetch(source, { signal: AbortSignal.timeout(30_000) });
    if (!res.ok) throw new UsageError(`--checkpoints ${source}: HTTP ${res.status}`);
    return res.text();
  }
  const { readFile } = await import("node:fs/promises");
  return readFile(source, "utf8").catch((err: NodeJS.ErrnoException) => {
    throw new UsageError(`--checkpoints ${source}: ${err.code ?? err.message}`);
  });
}

/**
 * `mcp-gateway audit verify [--expect-head h] [--audit-key-file f] [--allow-unkeyed]
 * [--checkpoints <file|url> [--checkpoint-public-key f]] [--json]`
 */
async function auditVerify(rest: string[]): Promise<number> {
  const { values } = parse(
    rest,
    {
      "data-dir": { type: "string" },
      "expect-head": { type: "string" },
      "audit-key-file": { type: "string" },
      "allow-unkeyed": { type: "boolean" },
      checkpoints: { type: "string" },
      "checkpoint-public-key": { type: "string" },
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
  const edgeStore = await import("@mcp-gateway/edge/store");
  let checkpoints: ReturnType<typeof edgeStore.createCheckpointCheck> | undefined;
  if (values.checkpoints) {
    const pubPath =
      values["checkpoint-public-key"] ??
      edgeStore.checkpointPublicKeyPath(
        edgeStore.defaultCheckpointKeyPath(values["data-dir"] ?? defaultDataDir()),
      );
    const publicKeys = await edgeStore.loadCheckpointPublicKeys(pubPath).catch((err: Error) => {
      throw new UsageError(`checkpoint public key ${pubPath}: ${err.message}`);
    });
    const parsed = edgeStore.parseCheckpoints(await readCheckpointSource(values.checkpoints));
    checkpoints = edgeStore.createCheckpointCheck(parsed.checkpoints, publicKeys);
    checkpoints.errors.unshift(...parsed.errors);
    if (checkpoints.check.count === 0 && checkpoints.errors.length === 0) {
      throw new UsageError(`--checkpoints ${values.checkpoints}: no checkpoints found`);
    }
  }
  const store = await auditStore(values["data-dir"]);
  try {
    const check = checkpoints?.check;
    // Long SQLite chains are read and inspected by worker threads (see verifyStoreAudit).
    let verdict = await edgeStore.verifyStoreAudit(store, {
      ...(values["expect-head"] ? { expectHead: values["expect-head"] } : {}),
      keys,
      requireKeyed: keys.length > 0 && !values["allow-unkeyed"],
      ...(check ? { onRecord: (seq: number, hash: string) => check.onRecord(seq, hash) } : {}),
    });
    if (verdict.ok && check) {
      const missing = check.tail(verdict.headSeq);
      if (missing) verdict = { ...verdict, ok: false, firstBad: missing };
    }
    const checkpointErrors = checkpoints?.errors ?? [];
    const ok = verdict.ok && checkpointErrors.length === 0;
    if (values.json) {
      process.stdout.write(
        `${JSON.stringify({
          ...verdict,
          ok,
          ...(checkpoints ? { checkpoints: checkpoints.check.count, checkpointErrors } : {}),
        })}\n`,
      );
    } else {
      for (const e of checkpointErrors) process.stdout.write(`checkpoint REJECTED: ${e}\n`);
      if (verdict.ok) {
        process.stdout.write(
          `audit chain intact: ${verdict.checked} records, head ${verdict.head}${checkpoints ? `, agrees with ${checkpoints.check.count} signed checkpoints` : ""}\n`,
        );
        for (const [id, r] of Object.entries(verdict.keyRanges)) {
          process.stdout.write(`  key ${id || "(unkeyed)"}: records ${r.first}..${r.last}\n`);
        }
      } else {
        process.stdout.write(
          `audit chain BROKEN at record ${verdict.firstBad?.seq}: ${verdict.firstBad?.reason} (${verdict.checked} records verified before it)\n`,
        );
      }
    }
    return ok ? 0 : 1;
  } finally {
    await store.close();
  }
}

/**
 * `mcp-gateway audit export [--since t] [--format jsonl] [--raw]` and
 * `audit export --follow [--position-file f] [--after-seq n]`: JSON lines of
 * records; `--raw` prints the stored rows {seq, prevHash, hash, body} an
 * independent verifier checks; `--follow` keeps streaming new records,
 * resuming after the position file's seq (at-least-once).
 */
async function auditExport(rest: string[]): Promise<number> {
  const { values } = parse(
    rest,
    {
      "data-dir": { type: "string" },
      since: { type: "string" },
      format: { type: "string" },
      raw: { type: "boolean" },
      follow: { type: "boolean" },
      "position-file": { type: "string" },
      "after-seq": { type: "string" },
      "poll-ms": { type: "string" },
    },
    false,
  );
  if ((values.format ?? "jsonl") !== "jsonl")
    throw new UsageError(`--format ${values.format}: only jsonl is supported`);
  const sinceMs = values.since === undefined ? undefined : Date.parse(values.since);
  if (sinceMs !== undefined && Number.isNaN(sinceMs))
    throw new UsageError(`--since ${values.since}: use an ISO 8601 time`);
  const afterSeq = Number(values["after-seq"] ?? 0);
  if (!Number.isSafeInteger(afterSeq) || afterSeq < 0)
    throw new UsageError(`--after-seq ${values["after-seq"]}: a record sequence number`);
  const store = await auditStore(values["data-dir"]);
  try {
    if (values.raw) {
      for await (const row of store.auditRows()) {
        if (row.seq <= afterSeq) continue;
        const { columns: _columns, ...stored } = row;
        process.stdout.write(`${JSON.stringify(stored)}\n`);
      }
      return 0;
    }
    if (values.follow) {
      const { createAuditExporter, streamExportSink } = await import("@mcp-gateway/edge/store");
      const stop = new AbortController();
      for (const sig of ["SIGINT", "SIGTERM"] as const) process.once(sig, () => stop.abort());
      const exporter = await createAuditExporter({
        list: (after, limit) =>
          store.listAudit({
            afterSeq: after,
            limit,
            ...(sinceMs !== undefined ? { sinceMs } : {}),
          }),
        sink: streamExportSink(process.stdout),
        ...(values["position-file"] ? { positionFile: values["position-file"] } : {}),
        startAfter: afterSeq,
        pollMs: Number(values["poll-ms"] ?? 500),
        logger: createLogger({ name: "audit-export", level: "warn" }),
      });
      await new Promise((r) => stop.signal.addEventListener("abort", r, { once: true }));
      await exporter.close();
      return 0;
    }
    let after = afterSeq;
    for (;;) {
      const page = await store.listAudit({
        afterSeq: after,
        limit: 1000,
        ...(sinceMs !== undefined ? { sinceMs } : {}),
      });
      for (const r of page) process.stdout.write(`${JSON.stringify(r)}\n`);
      if (page.length < 1000) break;
      after = page[page.length - 1]?.seq ?? after;
    }
    return 0;
  } finally {
    await store.close();
  }
}

/** `mcp-gateway audit verify …` and `mcp-gateway audit export …` (see auditVerify, auditExport). */
export async function auditCommand(argv: string[]): Promise<number> {
  const [sub, ...rest] = argv;
  if (sub === "verify") return auditVerify(rest);
  if (sub === "export") return auditExport(rest);
  throw new UsageError(
    "usage: mcp-gateway audit verify [--checkpoints <file|url>] | audit export [--since t] [--raw] [--follow [--position-file f]]",
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
