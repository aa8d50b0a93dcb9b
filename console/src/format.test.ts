import assert from "node:assert/strict";
import { describe, it } from "node:test";
import {
  checkLinks,
  formatBytes,
  formatCommandLine,
  formatDuration,
  readClaims,
  splitCommandLine,
} from "./format.js";

describe("splitCommandLine", () => {
  it("splits words and honours quotes and escapes, without expansion", () => {
    assert.deepEqual(splitCommandLine(`sh -c 'echo "a b"; ls $HOME'`), {
      command: "sh",
      args: ["-c", 'echo "a b"; ls $HOME'],
    });
    assert.deepEqual(splitCommandLine(`echo "x \\"y\\"" a\\ b '' *`), {
      command: "echo",
      args: ['x "y"', "a b", "", "*"],
    });
    assert.deepEqual(splitCommandLine("   "), { command: "", args: [] });
  });
  it("refuses an unterminated quote", () => {
    assert.throws(() => splitCommandLine("echo 'oops"), /unterminated single quote/);
  });
  it("formatCommandLine gives back what splitCommandLine reads", () => {
    const args = ["-c", "echo 'hi' there", "", "plain"];
    assert.deepEqual(splitCommandLine(formatCommandLine("sh", args)), { command: "sh", args });
  });
});

describe("formats", () => {
  it("bytes and durations", () => {
    assert.equal(formatBytes(512), "512 B");
    assert.equal(formatBytes(1536), "1.5 KiB");
    assert.equal(formatBytes(50 * 1024 * 1024), "50 MiB");
    assert.equal(formatDuration(850), "850 ms");
    assert.equal(formatDuration(3200), "3.2 s");
    assert.equal(formatDuration(125_000), "2 min 5 s");
  });
});

describe("readClaims", () => {
  const jwt = (payload: object) =>
    `e30.${Buffer.from(JSON.stringify(payload)).toString("base64url")}.sig`;
  it("reads subject, roles, tenant and expiry for display", () => {
    const c = readClaims(jwt({ sub: "ana", roles: ["auditor", 3], tenant: "t1", exp: 10 }));
    assert.deepEqual(c, { sub: "ana", roles: ["auditor"], tenant: "t1", expiresAt: 10_000 });
  });
  it("says in words when the text is not a token", () => {
    assert.throws(() => readClaims("hello"), /not an access token/);
    assert.throws(() => readClaims("a.!!!.c"), /payload cannot be read/);
  });
});

describe("checkLinks", () => {
  it("checks consecutive records, counts gaps, names broken links", () => {
    const r = checkLinks([
      { seq: 1n, hash: "h1", prevHash: "" },
      { seq: 2n, hash: "h2", prevHash: "h1" },
      { seq: 3n, hash: "h3", prevHash: "XX" },
      { seq: 7n, hash: "h7", prevHash: "h6" },
    ]);
    assert.deepEqual(r, { consistent: 1, broken: [3n], gaps: 1 });
  });
});
