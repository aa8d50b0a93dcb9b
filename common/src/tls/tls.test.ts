import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { X509Certificate } from "node:crypto";
import { chmodSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import * as tls from "node:tls";
import { type DevPki, ensureDevPki } from "./dev-pki.js";
import {
  checkRunnerIdentity,
  edgeIdentity,
  isAllowedPeer,
  parseSubjectAltName,
  peerIdentities,
  runnerIdentity,
} from "./identity.js";
import {
  loadTlsMaterial,
  mtlsServerOptions,
  type TlsMaterial,
  TlsMaterialError,
  watchTlsMaterial,
} from "./material.js";

const SERVER_AUTH = "1.3.6.1.5.5.7.3.1";
const CLIENT_AUTH = "1.3.6.1.5.5.7.3.2";

let root: string;
let pki: DevPki;
let otherPki: DevPki;

before(async () => {
  root = mkdtempSync(join(tmpdir(), "mcp-tls-test-"));
  pki = await ensureDevPki({ dir: join(root, "pki"), edgeIds: ["e1"], runnerIds: ["a", "b"] });
  otherPki = await ensureDevPki({ dir: join(root, "other"), edgeIds: ["e1"], runnerIds: [] });
});

after(() => {
  rmSync(root, { recursive: true, force: true });
});

function leafFiles(p: DevPki, kind: "edges" | "runners", id: string) {
  const leaf = p[kind][id];
  assert.ok(leaf, `no ${kind} leaf ${id}`);
  return { caPath: p.caCertPath, certPath: leaf.certPath, keyPath: leaf.keyPath };
}

function serialOf(path: string): string {
  return new X509Certificate(readFileSync(path)).serialNumber;
}

describe("ensureDevPki", () => {
  it("creates a CA (CA:true, 0700 dir, 0600 key) and leaves with SPIFFE URI SANs and both EKUs", () => {
    assert.equal(statSync(join(root, "pki")).mode & 0o777, 0o700);
    assert.equal(statSync(join(root, "pki", "ca.key")).mode & 0o777, 0o600);
    const ca = new X509Certificate(readFileSync(pki.caCertPath));
    assert.equal(ca.ca, true);
    const runner = new X509Certificate(readFileSync(leafFiles(pki, "runners", "a").certPath));
    assert.equal(runner.ca, false);
    assert.ok(runner.verify(ca.publicKey), "runner cert is signed by the CA");
    assert.deepEqual(parseSubjectAltName(runner.subjectAltName ?? ""), [
      "URI:spiffe://mcp-gateway/runner/a",
      "DNS:localhost",
      "IP Address:127.0.0.1",
      "IP Address:0:0:0:0:0:0:0:1",
    ]);
    assert.deepEqual([...(runner.keyUsage ?? [])].sort(), [SERVER_AUTH, CLIENT_AUTH].sort());
    const edge = new X509Certificate(readFileSync(leafFiles(pki, "edges", "e1").certPath));
    assert.ok(
      parseSubjectAltName(edge.subjectAltName ?? "").includes("URI:spiffe://mcp-gateway/edge/e1"),
    );
    assert.ok(edge.keyUsage?.includes(CLIENT_AUTH));
    assert.equal(statSync(leafFiles(pki, "edges", "e1").keyPath).mode & 0o777, 0o600);
    const days = (Date.parse(edge.validTo) - Date.parse(edge.validFrom)) / 86_400_000;
    assert.ok(days > 29.9 && days < 30.1, `leaf validity ${days} days, want 30`);
  });

  it("reuses valid material and reissues a missing or nearly expired leaf", async () => {
    const dir = join(root, "reuse");
    const first = await ensureDevPki({ dir, edgeIds: ["e"], runnerIds: ["r"] });
    const caSerial = serialOf(first.caCertPath);
    const edgeSerial = serialOf(leafFiles(first, "edges", "e").certPath);
    const again = await ensureDevPki({ dir, edgeIds: ["e"], runnerIds: ["r"] });
    assert.equal(serialOf(again.caCertPath), caSerial);
    assert.equal(serialOf(leafFiles(again, "edges", "e").certPath), edgeSerial);

    rmSync(leafFiles(first, "runners", "r").certPath);
    const reissued = await ensureDevPki({ dir, edgeIds: ["e"], runnerIds: ["r"] });
    assert.ok(statSync(leafFiles(reissued, "runners", "r").certPath).isFile());
    assert.equal(
      serialOf(leafFiles(reissued, "edges", "e").certPath),
      edgeSerial,
      "untouched leaf kept",
    );

    // A leaf valid for about one second has far less than 1/3 of its (backdated) validity left.
    await ensureDevPki({ dir, edgeIds: [], runnerIds: ["short"], validityDays: 1 / 86_400 });
    const shortSerial = serialOf(join(dir, "runner-short.crt"));
    await ensureDevPki({ dir, edgeIds: [], runnerIds: ["short"] });
    assert.notEqual(serialOf(join(dir, "runner-short.crt")), shortSerial);
    assert.equal(serialOf(first.caCertPath), caSerial, "CA kept across leaf renewals");
  });

  it("replaces a CA whose key cannot sign (not P-256) when a leaf must be issued", async () => {
    // The CA's key is imported for signing only when a leaf is issued; an unusable one (here an
    // RSA CA, which Node reads but the dev PKI cannot sign with) still means a new CA.
    const dir = join(root, "rsa-ca");
    const first = await ensureDevPki({ dir, edgeIds: ["e"], runnerIds: [] });
    await new Promise<void>((resolve, reject) =>
      execFile(
        "openssl",
        [
          "req",
          "-x509",
          "-newkey",
          "rsa:2048",
          "-nodes",
          "-days",
          "30",
          "-subj",
          "/CN=rsa ca",
          "-addext",
          "basicConstraints=critical,CA:TRUE",
          "-keyout",
          join(dir, "ca.key"),
          "-out",
          first.caCertPath,
        ],
        (err) => (err ? reject(err) : resolve()),
      ),
    );
    chmodSync(join(dir, "ca.key"), 0o600);
    const rsaSerial = serialOf(first.caCertPath);
    const again = await ensureDevPki({ dir, edgeIds: ["e"], runnerIds: ["r"] });
    assert.notEqual(serialOf(again.caCertPath), rsaSerial, "a new CA");
    const ca = new X509Certificate(readFileSync(again.caCertPath));
    for (const leaf of [leafFiles(again, "edges", "e"), leafFiles(again, "runners", "r")]) {
      assert.ok(new X509Certificate(readFileSync(leaf.certPath)).checkIssued(ca));
    }
  });

  it("ends with one consistent CA when started concurrently", async () => {
    const dir = join(root, "race");
    const results = await Promise.all([
      ensureDevPki({ dir, edgeIds: ["e"], runnerIds: ["r"] }),
      ensureDevPki({ dir, edgeIds: ["e"], runnerIds: ["r"] }),
      ensureDevPki({ dir, edgeIds: ["e"], runnerIds: ["r"] }),
    ]);
    const ca = new X509Certificate(readFileSync(join(dir, "ca.crt")));
    for (const r of results) {
      for (const leaf of [r.edges.e, r.runners.r]) {
        assert.ok(leaf);
        assert.ok(new X509Certificate(readFileSync(leaf.certPath)).verify(ca.publicKey));
        loadTlsMaterial({ caPath: r.caCertPath, ...leaf });
      }
    }
  });

  it("ends with one CA when two processes (edge and runner) start together", async () => {
    const dir = join(root, "race-processes");
    const module = new URL("./dev-pki.ts", import.meta.url).href;
    const script = (edgeIds: string[], runnerIds: string[]) =>
      `const { ensureDevPki } = await import(${JSON.stringify(module)});
       const p = await ensureDevPki({ dir: ${JSON.stringify(dir)}, edgeIds: ${JSON.stringify(edgeIds)}, runnerIds: ${JSON.stringify(runnerIds)} });
       process.stdout.write(p.caCertPath);`;
    const run = (code: string) =>
      new Promise<void>((resolve, reject) => {
        execFile(
          process.execPath,
          ["--import", "tsx", "--input-type=module", "-e", code],
          (err, _out, stderr) => (err ? reject(new Error(`${err.message}\n${stderr}`)) : resolve()),
        );
      });
    await Promise.all([run(script(["e"], ["r"])), run(script(["e"], ["r"]))]);
    const ca = new X509Certificate(readFileSync(join(dir, "ca.crt")));
    for (const name of ["edge-e", "runner-r"]) {
      assert.ok(
        new X509Certificate(readFileSync(join(dir, `${name}.crt`))).verify(ca.publicKey),
        name,
      );
    }
  });

  it("refuses ids that could escape the directory", async () => {
    await assert.rejects(
      ensureDevPki({ dir: join(root, "bad"), edgeIds: ["../x"], runnerIds: [] }),
      {
        code: "invalid_id",
      },
    );
  });
});

describe("loadTlsMaterial", () => {
  it("loads valid material with its identity and expiry", () => {
    const m = loadTlsMaterial(leafFiles(pki, "runners", "a"));
    assert.equal(m.identity, runnerIdentity("a"));
    assert.ok(m.notAfter.getTime() > Date.now());
  });

  it("refuses a key file with group/other permission bits and says which chmod to run", () => {
    const files = leafFiles(pki, "runners", "b");
    chmodSync(files.keyPath, 0o640);
    try {
      assert.throws(
        () => loadTlsMaterial(files),
        (err: unknown) =>
          err instanceof TlsMaterialError &&
          err.code === "loose_key_permissions" &&
          err.message.includes(`chmod 600 ${files.keyPath}`),
      );
    } finally {
      chmodSync(files.keyPath, 0o600);
    }
  });

  it("reports missing files, invalid PEM and mismatched keys with their codes", () => {
    const files = leafFiles(pki, "runners", "a");
    assert.throws(() => loadTlsMaterial({ ...files, certPath: join(root, "nope.crt") }), {
      code: "missing_file",
    });
    const garbage = join(root, "garbage.crt");
    writeFileSync(
      garbage,
      "-----BEGIN CERTIFICATE-----\nnot base64 at all\n-----END CERTIFICATE-----\n",
    );
    assert.throws(() => loadTlsMaterial({ ...files, certPath: garbage }), { code: "invalid_pem" });
    assert.throws(
      () => loadTlsMaterial({ ...files, keyPath: leafFiles(pki, "runners", "b").keyPath }),
      {
        code: "key_mismatch",
      },
    );
  });
});

describe("peerIdentities", () => {
  it("extracts URI SANs and does not split quoted values", () => {
    const cert = {
      subjectaltname:
        'URI:spiffe://mcp-gateway/edge/e1, DNS:localhost, URI:"spiffe://x/y, URI:spiffe://mcp-gateway/edge/evil"',
    } as unknown as tls.PeerCertificate;
    assert.deepEqual(peerIdentities(cert), [
      "spiffe://mcp-gateway/edge/e1",
      "spiffe://x/y, URI:spiffe://mcp-gateway/edge/evil",
    ]);
  });
});

interface MtlsServer {
  port: number;
  /** Handshake errors the server saw, oldest first. */
  clientErrors: Array<Error & { code?: string }>;
  /** How many connections reached the connection handler. */
  accepted(): number;
  server: tls.Server;
  close(): Promise<void>;
}

/** A runner-like TLS server that answers `allowed` or `denied` per isAllowedPeer. */
async function startServer(material: TlsMaterial, allowed: string[]): Promise<MtlsServer> {
  let accepted = 0;
  const server = tls.createServer(mtlsServerOptions(material), (socket) => {
    accepted++;
    socket.end(isAllowedPeer(socket, allowed) ? "allowed" : "denied");
  });
  const clientErrors: Array<Error & { code?: string }> = [];
  server.on("tlsClientError", (err) => clientErrors.push(err));
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const address = server.address();
  assert.ok(address !== null && typeof address === "object");
  return {
    port: address.port,
    clientErrors,
    accepted: () => accepted,
    server,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

type DialResult =
  | { ok: true; data: string; serverSerial: string }
  | { ok: false; error: Error & { code?: string } };

function dial(port: number, options: tls.ConnectionOptions): Promise<DialResult> {
  return new Promise((resolve) => {
    let data = "";
    let serverSerial = "";
    const socket = tls.connect(
      { host: "127.0.0.1", port, servername: "localhost", ...options },
      () => {
        serverSerial = socket.getPeerCertificate().serialNumber;
      },
    );
    socket.setEncoding("utf8");
    socket.on("data", (chunk: string) => {
      data += chunk;
    });
    socket.on("error", (error) => resolve({ ok: false, error }));
    socket.on("end", () => resolve({ ok: true, data, serverSerial }));
  });
}

function clientOptions(
  m: TlsMaterial | undefined,
  ca: Buffer,
  expectRunner: string,
): tls.ConnectionOptions {
  return {
    ca,
    ...(m === undefined ? {} : { cert: m.cert, key: m.key }),
    minVersion: "TLSv1.3",
    checkServerIdentity: checkRunnerIdentity(runnerIdentity(expectRunner)),
  };
}

describe("mutual TLS between edge and runner (real sockets on 127.0.0.1)", () => {
  let runnerA: TlsMaterial;
  let edge: TlsMaterial;
  let server: MtlsServer;

  before(async () => {
    runnerA = loadTlsMaterial(leafFiles(pki, "runners", "a"));
    edge = loadTlsMaterial(leafFiles(pki, "edges", "e1"));
    server = await startServer(runnerA, [edgeIdentity("e1")]);
  });
  after(() => server.close());

  it("accepts an edge with a valid certificate and the expected runner identity", async () => {
    const result = await dial(server.port, clientOptions(edge, runnerA.ca, "a"));
    assert.deepEqual(result.ok && result.data, "allowed");
  });

  it("refuses a client with no certificate in the handshake", async () => {
    const acceptedBefore = server.accepted();
    const result = await dial(server.port, clientOptions(undefined, runnerA.ca, "a"));
    assert.ok(!result.ok, "handshake must fail");
    assert.equal(result.error.code, "ERR_SSL_TLSV13_ALERT_CERTIFICATE_REQUIRED");
    assert.equal(server.accepted(), acceptedBefore, "the connection handler never ran");
  });

  it("refuses a client certificate from another CA in the handshake", async () => {
    const foreign = loadTlsMaterial(leafFiles(otherPki, "edges", "e1"));
    const acceptedBefore = server.accepted();
    const result = await dial(server.port, clientOptions(foreign, runnerA.ca, "a"));
    // Node's server verifies the chain at the end of the handshake and drops
    // the connection (no alert), so the client sees a close before any byte.
    assert.deepEqual(result.ok ? result.data : "", "", "no application data for a foreign client");
    assert.equal(server.accepted(), acceptedBefore, "the connection handler never ran");
  });

  it("lets the handshake through but isAllowedPeer refuses a valid certificate with a non-edge identity", async () => {
    const runnerB = loadTlsMaterial(leafFiles(pki, "runners", "b"));
    const result = await dial(server.port, clientOptions(runnerB, runnerA.ca, "a"));
    assert.deepEqual(result.ok && result.data, "denied");
  });

  it("fails the edge's connection when the runner's certificate names a different runner", async () => {
    const result = await dial(server.port, clientOptions(edge, runnerA.ca, "b"));
    assert.ok(!result.ok, "handshake must fail");
    assert.equal(result.error.code, "ERR_TLS_CERT_ALTNAME_INVALID");
    assert.match(
      result.error.message,
      /expected spiffe:\/\/mcp-gateway\/runner\/b, got spiffe:\/\/mcp-gateway\/runner\/a/,
    );
  });

  it("serves a rotated certificate after the files change, without restart", async () => {
    const dir = join(root, "rotate");
    const rotating = await ensureDevPki({ dir, edgeIds: ["e1"], runnerIds: ["a"] });
    const files = leafFiles(rotating, "runners", "a");
    const rServer = await startServer(loadTlsMaterial(files), [edgeIdentity("e1")]);
    const errors: Error[] = [];
    const changed = new Promise<TlsMaterial>((resolve) => {
      const stop = watchTlsMaterial(
        files,
        (m) => {
          rServer.server.setSecureContext(mtlsServerOptions(m));
          stop();
          resolve(m);
        },
        (e) => errors.push(e),
        { intervalMs: 20 },
      );
    });
    try {
      const client = loadTlsMaterial(leafFiles(rotating, "edges", "e1"));
      const before = await dial(rServer.port, clientOptions(client, client.ca, "a"));
      assert.ok(before.ok);
      assert.equal(before.serverSerial, serialOf(files.certPath));

      rmSync(files.certPath);
      await ensureDevPki({ dir, edgeIds: ["e1"], runnerIds: ["a"] });
      const newSerial = serialOf(files.certPath);
      assert.notEqual(newSerial, before.serverSerial);
      await changed;

      const afterRotation = await dial(rServer.port, clientOptions(client, client.ca, "a"));
      assert.ok(afterRotation.ok, "connection after rotation");
      assert.equal(afterRotation.serverSerial, newSerial);
      assert.ok(
        errors.every((e) => e instanceof TlsMaterialError),
        "transient errors are TlsMaterialErrors",
      );
    } finally {
      await rServer.close();
    }
  });

  it("keeps the old material and reports an error when the new files are invalid", async () => {
    const dir = join(root, "broken");
    const p = await ensureDevPki({ dir, edgeIds: [], runnerIds: ["a"] });
    const files = leafFiles(p, "runners", "a");
    const seen: string[] = [];
    const failed = new Promise<Error>((resolve) => {
      const stop = watchTlsMaterial(
        files,
        () => seen.push("change"),
        (e) => {
          stop();
          resolve(e);
        },
        { intervalMs: 20 },
      );
    });
    chmodSync(files.keyPath, 0o644);
    const error = await failed;
    chmodSync(files.keyPath, 0o600);
    assert.equal((error as TlsMaterialError).code, "loose_key_permissions");
    assert.deepEqual(seen, []);
  });
});
