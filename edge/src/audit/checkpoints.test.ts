import assert from "node:assert/strict";
import { createPublicKey, generateKeyPairSync } from "node:crypto";
import { describe, it } from "node:test";
import pino from "pino";
import {
  type AuditCheckpoint,
  checkCheckpoint,
  checkpointKeyId,
  createCheckpointer,
} from "./checkpoints.js";

describe("audit checkpointer", () => {
  it("records resolved together (one batch of appends) queue one checkpoint per everyRecords", async () => {
    const { privateKey } = generateKeyPairSync("ed25519");
    const publicKey = createPublicKey(privateKey);
    const written: AuditCheckpoint[] = [];
    const cp = createCheckpointer({
      signer: { keyId: checkpointKeyId(publicKey), privateKey, publicKey },
      edgeId: "edge-test",
      sinks: [{ name: "memory", write: async (c) => void written.push(c) }],
      head: async () => ({ seq: 35, hash: "h35" }),
      everyRecords: 10,
      everyMs: 3_600_000,
      logger: pino({ level: "silent" }),
    });
    // 35 records told in one go, before any checkpoint could be written: 10, 20 and 30.
    for (let seq = 1; seq <= 35; seq++) cp.appended({ seq, hash: `h${seq}` });
    await cp.close(); // and the final one, at the head (35)
    assert.deepEqual(
      written.map((c) => c.seq),
      [10, 20, 30, 35],
    );
    const keys = new Map([[checkpointKeyId(publicKey), publicKey]]);
    for (const c of written) assert.equal(checkCheckpoint(keys, c), undefined);
  });
});
