import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { pino } from "pino";
import { sampleAuditEntry } from "../store/contract.js";
import { createSqliteStore } from "../store/sqlite.js";
import { createAuditExporter, otlpExportSink, readExportPosition } from "./export.js";

let dir: string;
before(async () => {
  dir = await mkdtemp(join(tmpdir(), "audit-export-"));
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe("live export over OTLP", () => {
  it("delivers every record as an OTLP log record, retries a failing collector, resumes after a restart", async () => {
    const received: { seq: number; body: Record<string, unknown>; severity: string }[] = [];
    let failNext = 2;
    const server = createServer((req, res) => {
      let text = "";
      req.on("data", (d: Buffer) => (text += d.toString()));
      req.on("end", () => {
        assert.equal(req.url, "/v1/logs");
        if (failNext > 0) {
          failNext--;
          res.writeHead(503).end();
          return;
        }
        const doc = JSON.parse(text) as {
          resourceLogs: {
            scopeLogs: {
              logRecords: {
                body: { stringValue: string };
                severityText: string;
                attributes: { key: string; value: { intValue?: string } }[];
              }[];
            }[];
          }[];
        };
        for (const lr of doc.resourceLogs[0]?.scopeLogs[0]?.logRecords ?? []) {
          const seq = Number(lr.attributes.find((a) => a.key === "audit.seq")?.value.intValue);
          const body = JSON.parse(lr.body.stringValue) as Record<string, unknown>;
          received.push({ seq, body, severity: lr.severityText });
        }
        res.writeHead(200).end("{}");
      });
    });
    server.listen(0, "127.0.0.1");
    await new Promise((r) => server.once("listening", r));
    const endpoint = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    const store = createSqliteStore({ path: join(dir, "otlp.db") });
    const positionFile = join(dir, "otlp.pos");
    const open = () =>
      createAuditExporter({
        list: (afterSeq, limit) => store.listAudit({ afterSeq, limit }),
        sink: otlpExportSink({ endpoint }),
        positionFile,
        batchSize: 4,
        pollMs: 50,
        retryMs: 20,
        logger: pino({ level: "silent" }),
      });
    try {
      let exporter = await open();
      for (let i = 0; i < 10; i++) {
        await store.appendAudit(sampleAuditEntry({ decision: i === 3 ? "deny" : "allow" }));
      }
      await exporter.until(10);
      await exporter.close();
      assert.equal(await readExportPosition(positionFile), 10);
      // Restart: more records, the new exporter resumes after the position.
      for (let i = 0; i < 5; i++) await store.appendAudit(sampleAuditEntry());
      exporter = await open();
      await exporter.until(15);
      await exporter.close();
      assert.deepEqual(
        received.map((r) => r.seq),
        Array.from({ length: 15 }, (_, i) => i + 1),
        "every record once, in order, after two failed attempts",
      );
      assert.equal(failNext, 0, "the failing collector was retried");
      assert.equal(received[3]?.severity, "WARN");
      assert.equal(received[0]?.body.operation, "execute");
      assert.match(String(received[0]?.body.hash), /^[0-9a-f]{64}$/);
    } finally {
      await store.close();
      server.close();
    }
  });
});
