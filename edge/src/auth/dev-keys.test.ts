import assert from "node:assert/strict";
import { chmodSync, mkdtempSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { decodeProtectedHeader } from "jose";
import { AuthError, createAuthenticator, DEFAULT_CLAIM_MAPPING } from "./authenticator.js";
import {
  DEV_AUDIENCE,
  DEV_ISSUER,
  ensureDevSigningKey,
  mintDevToken,
  parseDuration,
} from "./dev-keys.js";

let root: string;

before(() => {
  root = mkdtempSync(join(tmpdir(), "mcp-devkeys-test-"));
});
after(() => rmSync(root, { recursive: true, force: true }));

describe("ensureDevSigningKey", () => {
  it("creates a 0600 ES256 key and a JWKS whose kid is the thumbprint, and reuses them", async () => {
    const dir = join(root, "auth");
    const first = await ensureDevSigningKey(dir);
    assert.equal(statSync(first.privateKeyPath).mode & 0o777, 0o600);
    const jwks = JSON.parse(readFileSync(first.jwksPath, "utf8")) as {
      keys: Array<Record<string, unknown>>;
    };
    assert.equal(jwks.keys.length, 1);
    assert.equal(jwks.keys[0]?.kid, first.kid);
    assert.equal(jwks.keys[0]?.alg, "ES256");
    assert.equal(jwks.keys[0]?.d, undefined, "no private part in the JWKS");
    assert.match(first.kid, /^[A-Za-z0-9_-]{43}$/);
    const again = await ensureDevSigningKey(dir);
    assert.deepEqual(again, first);
  });

  it("ends with one key when several processes start together", async () => {
    const dir = join(root, "race");
    const all = await Promise.all([1, 2, 3, 4].map(() => ensureDevSigningKey(dir)));
    assert.equal(new Set(all.map((k) => k.kid)).size, 1);
  });

  it("refuses a signing key readable by others", async () => {
    const dir = join(root, "loose");
    const { privateKeyPath } = await ensureDevSigningKey(dir);
    chmodSync(privateKeyPath, 0o644);
    await assert.rejects(ensureDevSigningKey(dir), { code: "loose_key_permissions" });
  });
});

describe("mintDevToken", () => {
  it("mints a token the edge's default authenticator accepts, with the claims mapped", async () => {
    const dir = join(root, "mint");
    const { jwksPath, kid } = await ensureDevSigningKey(dir);
    const token = await mintDevToken(dir, {
      sub: "dev-user",
      roles: ["developer"],
      scopes: ["tasks:run"],
      ttlSeconds: parseDuration("1h"),
      issuer: DEV_ISSUER,
      audience: DEV_AUDIENCE,
    });
    assert.equal(decodeProtectedHeader(token).kid, kid);
    const auth = createAuthenticator({
      jwks: { file: jwksPath },
      issuer: DEV_ISSUER,
      audience: DEV_AUDIENCE,
      algorithms: ["ES256"],
      clockToleranceSec: 30,
      claims: { ...DEFAULT_CLAIM_MAPPING },
    });
    assert.deepEqual(await auth.authenticate(`Bearer ${token}`), {
      sub: "dev-user",
      roles: ["developer"],
      tenant: "default",
      scopes: ["tasks:run"],
    });
    const otherAudience = await mintDevToken(dir, {
      sub: "dev-user",
      roles: [],
      ttlSeconds: 60,
      issuer: DEV_ISSUER,
      audience: "someone-else",
    });
    await assert.rejects(auth.authenticate(`Bearer ${otherAudience}`), (e: unknown) => {
      return e instanceof AuthError && e.code === "wrong_audience";
    });
  });

  it("refuses a non-positive ttl", async () => {
    await assert.rejects(
      mintDevToken(join(root, "mint"), {
        sub: "x",
        roles: [],
        ttlSeconds: 0,
        issuer: DEV_ISSUER,
        audience: DEV_AUDIENCE,
      }),
      { code: "invalid_argument" },
    );
  });
});

describe("parseDuration", () => {
  it("parses units and combinations", () => {
    assert.equal(parseDuration("45s"), 45);
    assert.equal(parseDuration("30m"), 1800);
    assert.equal(parseDuration("1h"), 3600);
    assert.equal(parseDuration("2d"), 172_800);
    assert.equal(parseDuration("1h30m"), 5400);
  });

  it("throws on garbage", () => {
    for (const bad of ["", "1", "h", "1x", "-1h", "1.5h", "0s", "1h 30m", "one hour"]) {
      assert.throws(() => parseDuration(bad), { code: "invalid_argument" }, bad);
    }
  });
});
