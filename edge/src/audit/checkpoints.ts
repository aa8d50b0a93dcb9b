import {
  createHash,
  createPrivateKey,
  createPublicKey,
  generateKeyPairSync,
  type KeyObject,
  sign,
  verify,
} from "node:crypto";
import { mkdir, open, readFile, stat } from "node:fs/promises";
import { dirname, join } from "node:path";
import { createFileOnce } from "@mcp-gateway/common/fs-atomic";
import type { Logger } from "pino";
import type { AuditRecord } from "../store/types.js";

/**
 * A signed statement "the audit chain had head `head` at record `seq`", kept
 * outside the database so that a rewritten or truncated chain is caught even
 * by someone who holds the database and the HMAC audit key. One JSON line;
 * `sig` is Ed25519 over {@link checkpointMessage}. See docs/security/audit-format.md.
 */
export interface AuditCheckpoint {
  type: typeof CHECKPOINT_TYPE;
  v: 1;
  /** Sequence number of the record the checkpoint covers. */
  seq: number;
  /** That record's hash. */
  head: string;
  /** When the checkpoint was signed, epoch ms. */
  time: number;
  /** Edge that signed it. */
  edge: string;
  /** Id of the signing key: "cp-" + 16 hex of sha256(raw 32-byte public key). */
  keyId: string;
  /** Base64 Ed25519 signature. */
  sig: string;
}

/** The `type` member of every checkpoint line (other lines in a mixed log are ignored). */
export const CHECKPOINT_TYPE = "mcp-gateway.audit.checkpoint";

/**
 * The bytes a checkpoint signature covers: one line per field, so a verifier
 * in any language rebuilds them without a JSON canonicalizer.
 */
export function checkpointMessage(cp: Omit<AuditCheckpoint, "sig" | "type" | "v">): Buffer {
  return Buffer.from(
    `mcp-gateway-audit-checkpoint/v1\n${cp.seq}\n${cp.head}\n${cp.time}\n${cp.edge}\n${cp.keyId}`,
  );
}

/** An Ed25519 key that signs checkpoints (separate from the HMAC audit key). */
export interface CheckpointSigner {
  keyId: string;
  privateKey: KeyObject;
  publicKey: KeyObject;
}

/** The checkpoint key id of an Ed25519 public key. */
export function checkpointKeyId(publicKey: KeyObject): string {
  const raw = publicKey.export({ format: "jwk" }).x ?? "";
  return `cp-${createHash("sha256").update(Buffer.from(raw, "base64url")).digest("hex").slice(0, 16)}`;
}

/** Default checkpoint key of a data directory: <dataDir>/audit/checkpoint.key (+ .pub). */
export function defaultCheckpointKeyPath(dataDir: string): string {
  return join(dataDir, "audit", "checkpoint.key");
}

/** Default checkpoint file of a data directory: <dataDir>/audit/checkpoints.jsonl. */
export function defaultCheckpointFile(dataDir: string): string {
  return join(dataDir, "audit", "checkpoints.jsonl");
}

/** Where the public half of a checkpoint key file is written: `<file>.pub`. */
export function checkpointPublicKeyPath(keyFile: string): string {
  return `${keyFile}.pub`;
}

/**
 * Loads the Ed25519 checkpoint key (PKCS#8 PEM, mode 0600), creating it and
 * its public half (`<file>.pub`, SPKI PEM — give that to verifiers) first when
 * `create` is set and it does not exist.
 */
export async function loadCheckpointSigner(
  keyFile: string,
  create = false,
): Promise<CheckpointSigner> {
  let st = await stat(keyFile).catch(() => undefined);
  if (!st && create) {
    await mkdir(dirname(keyFile), { recursive: true, mode: 0o700 });
    const pair = generateKeyPairSync("ed25519");
    const pem = pair.privateKey.export({ format: "pem", type: "pkcs8" }).toString();
    await createFileOnce(keyFile, pem, 0o600);
    st = await stat(keyFile);
  }
  if (!st?.isFile()) throw new Error(`checkpoint key file ${keyFile} does not exist`);
  if ((st.mode & 0o077) !== 0) {
    throw new Error(
      `checkpoint key file ${keyFile} is accessible by group or others; run: chmod 600 ${keyFile}`,
    );
  }
  const privateKey = createPrivateKey(await readFile(keyFile));
  if (privateKey.asymmetricKeyType !== "ed25519") {
    throw new Error(`checkpoint key file ${keyFile} does not hold an Ed25519 key`);
  }
  const publicKey = createPublicKey(privateKey);
  const pubPath = checkpointPublicKeyPath(keyFile);
  if (!(await stat(pubPath).catch(() => undefined))) {
    await createFileOnce(
      pubPath,
      publicKey.export({ format: "pem", type: "spki" }).toString(),
      0o644,
    );
  }
  return { keyId: checkpointKeyId(publicKey), privateKey, publicKey };
}

/** Reads Ed25519 public keys (one or more SPKI PEM blocks) that checkpoints may be signed with. */
export async function loadCheckpointPublicKeys(path: string): Promise<Map<string, KeyObject>> {
  const text = await readFile(path, "utf8");
  const blocks = text.match(/-----BEGIN PUBLIC KEY-----[\s\S]+?-----END PUBLIC KEY-----/g) ?? [];
  const keys = new Map<string, KeyObject>();
  for (const pem of blocks) {
    const key = createPublicKey(pem);
    if (key.asymmetricKeyType === "ed25519") keys.set(checkpointKeyId(key), key);
  }
  if (keys.size === 0) throw new Error(`${path} holds no Ed25519 public key`);
  return keys;
}

/** Signs a checkpoint for the record `seq` with hash `head`. */
export function signCheckpoint(
  signer: CheckpointSigner,
  fields: { seq: number; head: string; time: number; edge: string },
): AuditCheckpoint {
  const unsigned = { ...fields, keyId: signer.keyId };
  const sig = sign(null, checkpointMessage(unsigned), signer.privateKey).toString("base64");
  return { type: CHECKPOINT_TYPE, v: 1, ...unsigned, sig };
}

/** Why a checkpoint does not verify, or undefined when its signature is good. */
export function checkCheckpoint(
  keys: ReadonlyMap<string, KeyObject>,
  cp: AuditCheckpoint,
): string | undefined {
  const key = keys.get(cp.keyId);
  if (!key) return `signed by unknown checkpoint key ${cp.keyId}`;
  const ok = verify(null, checkpointMessage(cp), key, Buffer.from(cp.sig, "base64"));
  return ok ? undefined : "bad signature (checkpoint forged or altered)";
}

/**
 * The checkpoints in a text of JSON lines. Lines that are not checkpoints
 * (other log lines on the same stdout) are skipped; a line that claims to be
 * one but is ill-formed is returned as an error.
 */
export function parseCheckpoints(text: string): {
  checkpoints: AuditCheckpoint[];
  errors: string[];
} {
  const checkpoints: AuditCheckpoint[] = [];
  const errors: string[] = [];
  text.split("\n").forEach((line, i) => {
    if (!line.includes(CHECKPOINT_TYPE)) return;
    try {
      const cp = JSON.parse(line) as Partial<AuditCheckpoint>;
      if (
        cp.type === CHECKPOINT_TYPE &&
        Number.isSafeInteger(cp.seq) &&
        typeof cp.head === "string" &&
        Number.isSafeInteger(cp.time) &&
        typeof cp.edge === "string" &&
        typeof cp.keyId === "string" &&
        typeof cp.sig === "string"
      ) {
        checkpoints.push(cp as AuditCheckpoint);
        return;
      }
    } catch {
      // fall through
    }
    errors.push(`line ${i + 1}: not a well-formed checkpoint`);
  });
  return { checkpoints, errors };
}

/** Where checkpoints are written. A sink rejects when the checkpoint was not stored. */
export interface CheckpointSink {
  /** For logs: "file:<path>", "stdout", "webhook:<url>". */
  name: string;
  write(cp: AuditCheckpoint): Promise<void>;
}

/** Appends checkpoints as JSON lines to a local file (O_APPEND, fsync'ed; keep it append-only, e.g. chattr +a). */
export function fileCheckpointSink(path: string): CheckpointSink {
  return {
    name: `file:${path}`,
    async write(cp) {
      await mkdir(dirname(path), { recursive: true, mode: 0o700 });
      const handle = await open(path, "a", 0o600);
      try {
        await handle.write(`${JSON.stringify(cp)}\n`);
        await handle.sync();
      } finally {
        await handle.close();
      }
    },
  };
}

/** Writes checkpoints as JSON lines to a stream (stdout, collected by journald/syslog or a log shipper). */
export function streamCheckpointSink(out: NodeJS.WritableStream = process.stdout): CheckpointSink {
  return {
    name: "stdout",
    async write(cp) {
      out.write(`${JSON.stringify(cp)}\n`);
    },
  };
}

/** Options for {@link webhookCheckpointSink}. */
export interface WebhookSinkOptions {
  /** http(s) URL; `{seq}` is replaced by the checkpoint's seq (one object per checkpoint, e.g. S3 keys). */
  url: string;
  /** POST (default) or PUT (object storage). */
  method?: "POST" | "PUT";
  /** Extra headers (e.g. authorization, x-amz-object-lock-mode). */
  headers?: Record<string, string>;
  /** Per-request timeout, ms (default 5000). */
  timeoutMs?: number;
}

/** Sends each checkpoint as a JSON body to an HTTP(S) endpoint; a non-2xx answer is a failure. */
export function webhookCheckpointSink(options: WebhookSinkOptions): CheckpointSink {
  return {
    name: `webhook:${options.url}`,
    async write(cp) {
      const res = await fetch(options.url.replaceAll("{seq}", String(cp.seq)), {
        method: options.method ?? "POST",
        headers: { "content-type": "application/json", ...options.headers },
        body: `${JSON.stringify(cp)}\n`,
        signal: AbortSignal.timeout(options.timeoutMs ?? 5000),
      });
      await res.body?.cancel();
      if (!res.ok) throw new Error(`checkpoint webhook answered ${res.status}`);
    },
  };
}

/** Options for {@link createCheckpointer}. */
export interface CheckpointerOptions {
  signer: CheckpointSigner;
  /** This edge's id, in every checkpoint. */
  edgeId: string;
  sinks: readonly CheckpointSink[];
  /** Reads the chain head (any edge may have appended). */
  head: () => Promise<{ seq: number; hash: string }>;
  /** Checkpoint after this many records appended by this edge. */
  everyRecords: number;
  /** And at least this often while the chain grows, ms. */
  everyMs: number;
  logger: Logger;
  /** Called after each checkpoint with the sinks that failed (for metrics). */
  onCheckpoint?: (cp: AuditCheckpoint, failed: string[]) => void;
}

/** Writes signed checkpoints of the audit chain head to sinks outside the store. */
export interface Checkpointer {
  /** Tells the checkpointer about a record this edge appended. */
  appended(record: Pick<AuditRecord, "seq" | "hash">): void;
  /** Checkpoints the current head now (if it moved); resolves when every sink was tried. */
  flush(): Promise<AuditCheckpoint | undefined>;
  /** Stops the timer after a final checkpoint. */
  close(): Promise<void>;
}

/**
 * Creates the checkpointer: every `everyRecords` records this edge appends,
 * and every `everyMs` while the chain head moved, it signs {seq, head, time,
 * edge} and writes it to every sink. A sink that fails is logged; the next
 * checkpoint (which covers everything before it) is the retry.
 *
 * @example
 * const cp = createCheckpointer({ signer, edgeId, sinks: [fileCheckpointSink(p)], head: () => store.auditHead(), everyRecords: 1000, everyMs: 60_000, logger });
 */
export function createCheckpointer(options: CheckpointerOptions): Checkpointer {
  const { logger } = options;
  let lastSeq = 0;
  /** The highest seq a checkpoint was written or queued for: `appended` counts from it. */
  let queuedSeq = 0;
  let chain: Promise<unknown> = Promise.resolve();

  async function write(head: { seq: number; hash: string }): Promise<AuditCheckpoint | undefined> {
    if (head.seq <= lastSeq) return undefined;
    lastSeq = head.seq;
    const cp = signCheckpoint(options.signer, {
      seq: head.seq,
      head: head.hash,
      time: Date.now(),
      edge: options.edgeId,
    });
    const failed: string[] = [];
    await Promise.all(
      options.sinks.map((s) =>
        s.write(cp).catch((err: unknown) => {
          failed.push(s.name);
          logger.error(
            { err: String(err), sink: s.name, seq: cp.seq },
            "audit checkpoint not written",
          );
        }),
      ),
    );
    options.onCheckpoint?.(cp, failed);
    return cp;
  }
  const enqueue = <T>(fn: () => Promise<T>): Promise<T> => {
    const next = chain.then(fn, fn);
    chain = next.catch(() => undefined);
    return next;
  };
  const flush = () => enqueue(async () => write(await options.head()));
  const timer = setInterval(() => {
    flush().catch((err: unknown) => logger.warn({ err: String(err) }, "audit checkpoint failed"));
  }, options.everyMs);
  timer.unref();

  return {
    appended(record) {
      // Counted from the last checkpoint queued, not the last written: records resolved together
      // (a batch of appends) would otherwise each queue a checkpoint of their own.
      if (record.seq - Math.max(lastSeq, queuedSeq) >= options.everyRecords) {
        queuedSeq = record.seq;
        void enqueue(() => write(record));
      }
    },
    flush,
    async close() {
      clearInterval(timer);
      await flush().catch(() => undefined);
    },
  };
}

/** Result of {@link createCheckpointCheck}'s final verdict. */
export interface CheckpointCheck {
  /** Per-record check to pass as VerifyOptions.onRecord. */
  onRecord: (seq: number, hash: string) => string | undefined;
  /** After the chain was walked to `headSeq`: why it falls short of a checkpoint, if it does. */
  tail: (headSeq: number) => { seq: number; reason: string } | undefined;
  /** Checkpoints with a valid signature. */
  count: number;
}

/**
 * Prepares the comparison of a chain with signed checkpoints: each verified
 * record whose seq a checkpoint names must have that checkpoint's head, and
 * the chain must reach the highest checkpointed seq. Checkpoints that do not
 * verify are errors (the caller reports them and fails).
 */
export function createCheckpointCheck(
  checkpoints: readonly AuditCheckpoint[],
  keys: ReadonlyMap<string, KeyObject>,
): { check: CheckpointCheck; errors: string[] } {
  const errors: string[] = [];
  const bySeq = new Map<number, AuditCheckpoint[]>();
  let highest: AuditCheckpoint | undefined;
  for (const cp of checkpoints) {
    const bad = checkCheckpoint(keys, cp);
    if (bad) {
      errors.push(`checkpoint for seq ${cp.seq} (edge ${cp.edge}): ${bad}`);
      continue;
    }
    bySeq.set(cp.seq, [...(bySeq.get(cp.seq) ?? []), cp]);
    if (!highest || cp.seq > highest.seq) highest = cp;
  }
  const describe = (cp: AuditCheckpoint) =>
    `signed by edge ${cp.edge} at ${new Date(cp.time).toISOString()}`;
  let lastMatched = 0;
  return {
    errors,
    check: {
      count: [...bySeq.values()].reduce((n, l) => n + l.length, 0),
      onRecord(seq, hash) {
        const here = bySeq.get(seq);
        if (!here) return undefined;
        const differs = here.find((cp) => cp.head !== hash);
        if (differs) {
          const from = lastMatched + 1;
          return `record ${seq} differs from the checkpoint ${describe(differs)}: the chain was rewritten after it; the first changed record is in seq ${from}..${seq}${from === seq ? "" : ` (records before ${from} match an earlier checkpoint)`}`;
        }
        lastMatched = seq;
        return undefined;
      },
      tail(headSeq) {
        if (!highest || headSeq >= highest.seq) return undefined;
        return {
          seq: headSeq + 1,
          reason: `the chain ends at record ${headSeq} but a checkpoint ${describe(highest)} covers record ${highest.seq}: records ${headSeq + 1}..${highest.seq} are missing (tail removed)`,
        };
      },
    },
  };
}
