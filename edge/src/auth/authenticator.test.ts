import assert from "node:assert/strict";
import { mkdtempSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { createServer, type Server } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import {
  type CryptoKey,
  exportJWK,
  exportSPKI,
  generateKeyPair,
  type JWK,
  type JWTPayload,
  SignJWT,
} from "jose";
import {
  AuthConfigError,
  AuthError,
  type AuthErrorCode,
  type Authenticator,
  type AuthenticatorOptions,
  createAuthenticator,
  DEFAULT_CLAIM_MAPPING,
} from "./authenticator.js";

const ISSUER = "https://idp.test/";
const AUDIENCE = "mcp-gateway";

interface TestKey {
  kid: string;
  privateKey: CryptoKey;
  publicJwk: JWK;
  publicPem: string;
}

async function makeKey(kid: string, alg = "ES256"): Promise<TestKey> {
  const { privateKey, publicKey } = await generateKeyPair(alg, { extractable: true });
  const jwk = await exportJWK(publicKey);
  return {
    kid,
    privateKey,
    publicJwk: { ...jwk, kid, alg, use: "sig" },
    publicPem: await exportSPKI(publicKey),
  };
}

function nowSec(): number {
  return Math.floor(Date.now() / 1000);
}

async function sign(
  key: TestKey,
  claims: Record<string, unknown> = {},
  header: { kid?: string | null; alg?: string; typ?: string } = {},
): Promise<string> {
  const payload: JWTPayload = {
    iss: ISSUER,
    aud: AUDIENCE,
    sub: "alice",
    iat: nowSec(),
    exp: nowSec() + 300,
    roles: ["developer"],
    tenant: "acme",
    scope: "tasks:run files:read",
    ...claims,
  };
  for (const [k, v] of Object.entries(payload)) if (v === undefined) delete payload[k];
  const kid = header.kid === undefined ? key.kid : header.kid;
  return new SignJWT(payload)
    .setProtectedHeader({
      alg: header.alg ?? "ES256",
      ...(kid === null ? {} : { kid }),
      ...(header.typ === undefined ? {} : { typ: header.typ }),
    })
    .sign(key.privateKey);
}

function b64url(value: unknown): string {
  return Buffer.from(JSON.stringify(value)).toString("base64url");
}

function writeJwks(path: string, keys: TestKey[]): void {
  const tmp = `${path}.tmp`;
  writeFileSync(tmp, JSON.stringify({ keys: keys.map((k) => k.publicJwk) }));
  renameSync(tmp, path);
}

async function rejectsWith(promise: Promise<unknown>, code: AuthErrorCode): Promise<AuthError> {
  try {
    await promise;
  } catch (err) {
    assert.ok(err instanceof AuthError, `expected AuthError(${code}), got ${String(err)}`);
    assert.equal(err.code, code, `expected ${code}, got ${err.code}: ${err.message}`);
    return err;
  }
  assert.fail(`expected AuthError(${code}), but the token was accepted`);
}

function options(
  jwks: AuthenticatorOptions["jwks"],
  extra: Partial<AuthenticatorOptions> = {},
): AuthenticatorOptions {
  return {
    jwks,
    issuer: ISSUER,
    audience: AUDIENCE,
    algorithms: ["ES256", "RS256"],
    clockToleranceSec: 30,
    claims: { ...DEFAULT_CLAIM_MAPPING },
    ...extra,
  };
}

let dir: string;
let k1: TestKey;
let k2: TestKey;
let stranger: TestKey;
let rsa: TestKey;

before(async () => {
  dir = mkdtempSync(join(tmpdir(), "mcp-auth-test-"));
  [k1, k2, stranger, rsa] = await Promise.all([
    makeKey("k1"),
    makeKey("k2"),
    makeKey("stranger"),
    makeKey("rsa1", "RS256"),
  ]);
});

after(() => rmSync(dir, { recursive: true, force: true }));

describe("createAuthenticator with a local JWKS file", () => {
  let auth: Authenticator;
  let jwksPath: string;

  before(() => {
    jwksPath = join(dir, "jwks.json");
    writeJwks(jwksPath, [k1, rsa]);
    auth = createAuthenticator(options({ file: jwksPath }));
  });

  it("accepts a valid token and maps claims to the principal", async () => {
    const principal = await auth.authenticate(`Bearer ${await sign(k1)}`);
    assert.deepEqual(principal, {
      sub: "alice",
      roles: ["developer"],
      tenant: "acme",
      scopes: ["tasks:run", "files:read"],
    });
    const viaRsa = await auth.authenticate(
      `bearer ${await sign(rsa, { sub: "bob" }, { alg: "RS256" })}`,
    );
    assert.equal(viaRsa.sub, "bob");
  });

  it("maps configured claim paths: namespaced names, nested paths, scope arrays; absent claims are empty", async () => {
    const custom = createAuthenticator(
      options(
        { file: jwksPath },
        {
          claims: {
            roles: "realm_access.roles",
            tenant: "https://acme.example/tenant",
            scopes: "scp",
          },
        },
      ),
    );
    const token = await sign(k1, {
      realm_access: { roles: ["admin", "developer"] },
      "https://acme.example/tenant": "t-42",
      scp: ["a", "b"],
    });
    assert.deepEqual(await custom.authenticate(`Bearer ${token}`), {
      sub: "alice",
      roles: ["admin", "developer"],
      tenant: "t-42",
      scopes: ["a", "b"],
    });
    const bare = await sign(k1, { roles: undefined, tenant: undefined, scope: undefined });
    assert.deepEqual(await auth.authenticate(`Bearer ${bare}`), {
      sub: "alice",
      roles: [],
      tenant: "",
      scopes: [],
    });
  });

  it("refuses a mapped claim of the wrong type", async () => {
    await rejectsWith(auth.authenticate(`Bearer ${await sign(k1, { roles: 5 })}`), "invalid_token");
    await rejectsWith(
      auth.authenticate(`Bearer ${await sign(k1, { tenant: ["a"] })}`),
      "invalid_token",
    );
  });

  it("refuses a forged signature (payload changed, or signature bytes changed)", async () => {
    const [h, , s] = (await sign(k1)).split(".");
    const forgedPayload = b64url({
      iss: ISSUER,
      aud: AUDIENCE,
      sub: "root",
      exp: nowSec() + 300,
      roles: ["admin"],
    });
    await rejectsWith(auth.authenticate(`Bearer ${h}.${forgedPayload}.${s}`), "invalid_token");
    const [h2, p2, s2 = ""] = (await sign(k1)).split(".");
    const flipped = `${s2.startsWith("A") ? "B" : "A"}${s2.slice(1)}`;
    await rejectsWith(auth.authenticate(`Bearer ${h2}.${p2}.${flipped}`), "invalid_token");
  });

  it("refuses a token signed by a key not in the JWKS: unknown kid, or a trusted kid with the wrong key", async () => {
    await rejectsWith(auth.authenticate(`Bearer ${await sign(stranger)}`), "unknown_key");
    await rejectsWith(
      auth.authenticate(`Bearer ${await sign(stranger, {}, { kid: "k1" })}`),
      "invalid_token",
    );
  });

  it("refuses expired tokens beyond the clock tolerance and accepts them within it", async () => {
    await rejectsWith(
      auth.authenticate(`Bearer ${await sign(k1, { exp: nowSec() - 120 })}`),
      "expired",
    );
    const slightly = await auth.authenticate(`Bearer ${await sign(k1, { exp: nowSec() - 5 })}`);
    assert.equal(slightly.sub, "alice");
  });

  it("refuses tokens that are not valid yet", async () => {
    await rejectsWith(
      auth.authenticate(`Bearer ${await sign(k1, { nbf: nowSec() + 600 })}`),
      "not_yet_valid",
    );
  });

  it("refuses a wrong or missing issuer", async () => {
    await rejectsWith(
      auth.authenticate(`Bearer ${await sign(k1, { iss: "https://evil.test/" })}`),
      "wrong_issuer",
    );
    await rejectsWith(
      auth.authenticate(`Bearer ${await sign(k1, { iss: undefined })}`),
      "wrong_issuer",
    );
  });

  it("refuses a wrong audience", async () => {
    await rejectsWith(
      auth.authenticate(`Bearer ${await sign(k1, { aud: "other-service" })}`),
      "wrong_audience",
    );
  });

  it("refuses tokens without exp or sub", async () => {
    await rejectsWith(
      auth.authenticate(`Bearer ${await sign(k1, { exp: undefined })}`),
      "invalid_token",
    );
    await rejectsWith(
      auth.authenticate(`Bearer ${await sign(k1, { sub: undefined })}`),
      "invalid_token",
    );
  });

  it('refuses alg "none"', async () => {
    const token = `${b64url({ alg: "none", typ: "JWT" })}.${b64url({ iss: ISSUER, aud: AUDIENCE, sub: "root", exp: nowSec() + 300 })}.`;
    await rejectsWith(auth.authenticate(`Bearer ${token}`), "bad_algorithm");
  });

  it("refuses HMAC confusion: HS256 signed with the public key bytes as the secret", async () => {
    for (const secret of [k1.publicPem, JSON.stringify(k1.publicJwk)]) {
      const token = await new SignJWT({ sub: "root", roles: ["admin"] })
        .setProtectedHeader({ alg: "HS256", kid: "k1" })
        .setIssuer(ISSUER)
        .setAudience(AUDIENCE)
        .setExpirationTime(nowSec() + 300)
        .sign(new TextEncoder().encode(secret));
      await rejectsWith(auth.authenticate(`Bearer ${token}`), "bad_algorithm");
    }
  });

  it("refuses algorithms outside the allowlist even when asymmetric", async () => {
    const es384 = await makeKey("k384", "ES384");
    await rejectsWith(
      auth.authenticate(`Bearer ${await sign(es384, {}, { alg: "ES384" })}`),
      "bad_algorithm",
    );
  });

  it("distinguishes a missing token, a malformed header and a garbled token, with RFC 6750 challenges", async () => {
    for (const missing of [undefined, null, "", "  "]) {
      const err = await rejectsWith(auth.authenticate(missing), "missing_token");
      assert.equal(err.wwwAuthenticate, 'Bearer realm="mcp-gateway"');
    }
    for (const malformed of [
      "Basic YWxpY2U6c2VjcmV0",
      "Bearer",
      "Bearer ",
      "Bearer a b",
      "Bearer tok{en}",
      "Token abc",
    ]) {
      const err = await rejectsWith(auth.authenticate(malformed), "malformed_header");
      assert.match(
        err.wwwAuthenticate,
        /^Bearer realm="mcp-gateway", error="invalid_request", error_description="[^"]+"$/,
      );
    }
    for (const garbled of [
      "Bearer abc",
      "Bearer abc.def.ghi",
      `Bearer ${b64url({ alg: "ES256", kid: "k1" })}.${Buffer.from("not json").toString("base64url")}.c2ln`,
      `Bearer ${b64url({ alg: "ES256" })}.e30`,
    ]) {
      const err = await rejectsWith(auth.authenticate(garbled), "invalid_token");
      assert.match(err.wwwAuthenticate, /error="invalid_token"/);
    }
    await rejectsWith(auth.authenticate(`Bearer ${"a".repeat(20_000)}`), "malformed_header");
  });

  it("picks the right key when the token has no kid and the JWKS has several candidates", async () => {
    const path = join(dir, "two-es256.json");
    writeJwks(path, [k2, k1]);
    const two = createAuthenticator(options({ file: path }));
    assert.equal(
      (await two.authenticate(`Bearer ${await sign(k1, {}, { kid: null })}`)).sub,
      "alice",
    );
    await rejectsWith(
      two.authenticate(`Bearer ${await sign(stranger, {}, { kid: null })}`),
      "invalid_token",
    );
  });

  it("follows rotation of the file: a new key works once added, the old one stops once removed", async () => {
    const path = join(dir, "rotating.json");
    writeJwks(path, [k1]);
    const rotating = createAuthenticator(options({ file: path }));
    const old = `Bearer ${await sign(k1)}`;
    const fresh = `Bearer ${await sign(k2)}`;
    assert.equal((await rotating.authenticate(old)).sub, "alice");
    await rejectsWith(rotating.authenticate(fresh), "unknown_key");
    writeJwks(path, [k1, k2]);
    assert.equal((await rotating.authenticate(fresh)).sub, "alice");
    assert.equal((await rotating.authenticate(old)).sub, "alice");
    writeJwks(path, [k2]);
    await rejectsWith(rotating.authenticate(old), "unknown_key");
    assert.equal((await rotating.authenticate(fresh)).sub, "alice");
  });

  it("fails closed with jwks_unavailable when the file is missing or not a JWKS", async () => {
    const missing = createAuthenticator(options({ file: join(dir, "nope.json") }));
    const err = await rejectsWith(
      missing.authenticate(`Bearer ${await sign(k1)}`),
      "jwks_unavailable",
    );
    assert.equal(err.wwwAuthenticate, 'Bearer realm="mcp-gateway"');
    const broken = join(dir, "broken.json");
    writeFileSync(broken, "{ not json");
    await rejectsWith(
      createAuthenticator(options({ file: broken })).authenticate(`Bearer ${await sign(k1)}`),
      "jwks_unavailable",
    );
  });
});

describe("createAuthenticator configuration", () => {
  it('refuses "none", HMAC, unknown and empty algorithm lists', () => {
    const file = { file: join(dir, "jwks.json") };
    for (const algorithms of [["none"], ["ES256", "HS256"], ["hs512"], ["RSA-OAEP"], []]) {
      assert.throws(
        () => createAuthenticator(options(file, { algorithms })),
        AuthConfigError,
        String(algorithms),
      );
    }
  });

  it("refuses a plain-http JWKS URL except on loopback", () => {
    assert.throws(
      () => createAuthenticator(options({ url: "http://idp.example.com/jwks" })),
      AuthConfigError,
    );
    assert.doesNotThrow(() => createAuthenticator(options({ url: "http://127.0.0.1:1/jwks" })));
  });
});

describe("createAuthenticator with a remote JWKS (real HTTP server on 127.0.0.1)", () => {
  let server: Server;
  let url: string;
  let served: TestKey[] = [];
  let fetches = 0;

  before(async () => {
    server = createServer((_req, res) => {
      fetches++;
      res.setHeader("content-type", "application/json");
      res.end(JSON.stringify({ keys: served.map((k) => k.publicJwk) }));
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    const address = server.address();
    assert.ok(address !== null && typeof address === "object");
    url = `http://127.0.0.1:${address.port}/.well-known/jwks.json`;
  });

  after(() => new Promise<void>((resolve) => server.close(() => resolve())));

  it("caches the set, refetches on an unknown kid, and stops accepting a removed key after the refetch", async () => {
    served = [k1];
    fetches = 0;
    const auth = createAuthenticator(options({ url, cooldownMs: 0 }));
    const old = `Bearer ${await sign(k1)}`;
    assert.equal((await auth.authenticate(old)).sub, "alice");
    assert.equal((await auth.authenticate(old)).sub, "alice");
    assert.equal(fetches, 1, "the set is cached between calls");

    served = [k2];
    assert.equal((await auth.authenticate(`Bearer ${await sign(k2)}`)).sub, "alice");
    assert.equal(fetches, 2, "an unknown kid triggers one refetch");
    await rejectsWith(auth.authenticate(old), "unknown_key");
  });

  it("remembers a verified token until the set is fetched again", async () => {
    served = [k1, k2];
    fetches = 0;
    const auth = createAuthenticator(options({ url, cooldownMs: 0 }));
    const token = `Bearer ${await sign(k1)}`;
    // The first call fetches the set: what it verified is not kept (the keys were not in
    // memory before it); from then on it is.
    await auth.authenticate(token);
    const a = await auth.authenticate(token);
    assert.equal(await auth.authenticate(token), a, "the remembered principal, no second check");
    served = [k2];
    const stranger2 = await makeKey("k3");
    await rejectsWith(auth.authenticate(`Bearer ${await sign(stranger2)}`), "unknown_key");
    assert.equal(fetches, 2, "an unknown kid refetched the set");
    await rejectsWith(auth.authenticate(token), "unknown_key");
  });

  it("rate-limits refetches for unknown kids within the cooldown", async () => {
    served = [k1];
    fetches = 0;
    const auth = createAuthenticator(options({ url, cooldownMs: 60_000 }));
    assert.equal((await auth.authenticate(`Bearer ${await sign(k1)}`)).sub, "alice");
    for (let i = 0; i < 5; i++) {
      await rejectsWith(
        auth.authenticate(`Bearer ${await sign(stranger, {}, { kid: `junk-${i}` })}`),
        "unknown_key",
      );
    }
    assert.equal(fetches, 1, "no refetch storm from forged kids");
  });

  it("reports jwks_unavailable when the JWKS endpoint cannot be reached", async () => {
    const closed = createServer();
    await new Promise<void>((resolve) => closed.listen(0, "127.0.0.1", resolve));
    const address = closed.address();
    assert.ok(address !== null && typeof address === "object");
    await new Promise<void>((resolve) => closed.close(() => resolve()));
    const auth = createAuthenticator(
      options({ url: `http://127.0.0.1:${address.port}/jwks`, timeoutMs: 2000 }),
    );
    await rejectsWith(auth.authenticate(`Bearer ${await sign(k1)}`), "jwks_unavailable");
  });
});

describe("token hygiene (issue 21, finding 7)", () => {
  let auth: Authenticator;
  let jwksPath: string;

  before(() => {
    jwksPath = join(dir, "jwks-hygiene.json");
    writeJwks(jwksPath, [k1]);
    auth = createAuthenticator(options({ file: jwksPath }));
  });

  it("refuses iat in the future beyond the clock tolerance, accepts it within", async () => {
    const future = await sign(k1, { iat: nowSec() + 3600, exp: nowSec() + 7200 });
    await rejectsWith(auth.authenticate(`Bearer ${future}`), "issued_in_future");
    const skewed = await sign(k1, { iat: nowSec() + 20, exp: nowSec() + 300 });
    assert.equal((await auth.authenticate(`Bearer ${skewed}`)).sub, "alice");
  });

  it("refuses a lifetime beyond the maximum (default 24 h), with or without iat", async () => {
    const century = await sign(k1, { exp: nowSec() + 100 * 365 * 86_400 });
    await rejectsWith(auth.authenticate(`Bearer ${century}`), "lifetime_too_long");
    const noIat = await sign(k1, { iat: undefined, exp: nowSec() + 2 * 86_400 });
    await rejectsWith(auth.authenticate(`Bearer ${noIat}`), "lifetime_too_long");
    const day = await sign(k1, { exp: nowSec() + 86_400 });
    assert.equal((await auth.authenticate(`Bearer ${day}`)).sub, "alice");
    const short = createAuthenticator(options({ file: jwksPath }, { maxLifetimeSec: 600 }));
    await rejectsWith(
      short.authenticate(`Bearer ${await sign(k1, { exp: nowSec() + 3600 })}`),
      "lifetime_too_long",
    );
  });

  it("checks typ: at+jwt (any case, application/ prefix) accepted, JWT only when configured, none allowed unless required", async () => {
    for (const typ of ["at+jwt", "AT+JWT", "application/at+jwt"]) {
      assert.equal((await auth.authenticate(`Bearer ${await sign(k1, {}, { typ })}`)).sub, "alice");
    }
    const idTokenLike = await sign(k1, {}, { typ: "JWT" });
    const err = await rejectsWith(auth.authenticate(`Bearer ${idTokenLike}`), "wrong_type");
    assert.match(err.wwwAuthenticate, /error="invalid_token"/);
    await rejectsWith(
      auth.authenticate(`Bearer ${await sign(k1, {}, { typ: "dpop+jwt" })}`),
      "wrong_type",
    );
    const withJwt = createAuthenticator(
      options({ file: jwksPath }, { tokenTypes: ["at+jwt", "JWT"] }),
    );
    assert.equal((await withJwt.authenticate(`Bearer ${idTokenLike}`)).sub, "alice");
    const untyped = await sign(k1);
    assert.equal((await auth.authenticate(`Bearer ${untyped}`)).sub, "alice");
    const strict = createAuthenticator(options({ file: jwksPath }, { requireTokenType: true }));
    await rejectsWith(strict.authenticate(`Bearer ${untyped}`), "wrong_type");
  });

  it("audience is strict: another audience next to ours is refused unless allowed", async () => {
    const both = await sign(k1, { aud: [AUDIENCE, "some-client-id"] });
    await rejectsWith(auth.authenticate(`Bearer ${both}`), "wrong_audience");
    await rejectsWith(
      auth.authenticate(`Bearer ${await sign(k1, { aud: "some-client-id" })}`),
      "wrong_audience",
    );
    assert.equal(
      (await auth.authenticate(`Bearer ${await sign(k1, { aud: [AUDIENCE] })}`)).sub,
      "alice",
    );
    const lenient = createAuthenticator(
      options({ file: jwksPath }, { extraAudiences: ["some-client-id"] }),
    );
    assert.equal((await lenient.authenticate(`Bearer ${both}`)).sub, "alice");
  });

  it("refuses unsafe hygiene options at configuration time", () => {
    assert.throws(
      () => createAuthenticator(options({ file: jwksPath }, { maxLifetimeSec: 0 })),
      AuthConfigError,
    );
    assert.throws(
      () => createAuthenticator(options({ file: jwksPath }, { tokenTypes: [] })),
      AuthConfigError,
    );
  });
});

describe("verified tokens remembered (issue 13)", () => {
  it("a token verified once is not verified again: the same frozen principal", async () => {
    const path = join(dir, "cache.json");
    writeJwks(path, [k1]);
    const auth = createAuthenticator(options({ file: path }));
    const token = `Bearer ${await sign(k1)}`;
    await auth.authenticate(token); // loads the key file: not kept (the keys were not in memory)
    const a = await auth.authenticate(token);
    const b = await auth.authenticate(token);
    assert.equal(a, b, "the remembered principal");
    assert.ok(Object.isFrozen(a) && Object.isFrozen(a.roles) && Object.isFrozen(a.scopes));
    assert.throws(() => {
      (a.roles as string[]).push("admin");
    }, TypeError);
    const off = createAuthenticator(options({ file: path }, { verifiedTokenCacheSize: 0 }));
    assert.notEqual(await off.authenticate(token), await off.authenticate(token));
  });

  it("a change of the key file forgets them: a remembered token of a removed key is refused", async () => {
    const path = join(dir, "cache-rotation.json");
    writeJwks(path, [k1, k2]);
    const auth = createAuthenticator(options({ file: path }));
    const token = `Bearer ${await sign(k1)}`;
    await auth.authenticate(token);
    writeJwks(path, [k2]);
    await rejectsWith(auth.authenticate(token), "unknown_key");
    rmSync(path);
    await rejectsWith(auth.authenticate(`Bearer ${await sign(k2)}`), "jwks_unavailable");
  });

  it("never past exp, and a short lifetime in the cache", async () => {
    const path = join(dir, "cache-exp.json");
    writeJwks(path, [k1]);
    const auth = createAuthenticator(
      options({ file: path }, { clockToleranceSec: 0, verifiedTokenTtlMs: 60_000 }),
    );
    const token = `Bearer ${await sign(k1, { exp: nowSec() + 1 })}`;
    await auth.authenticate(token);
    await new Promise((r) => setTimeout(r, 2100));
    await rejectsWith(auth.authenticate(token), "expired");
    const ttl = createAuthenticator(options({ file: path }, { verifiedTokenTtlMs: 50 }));
    const other = `Bearer ${await sign(k1)}`;
    const first = await ttl.authenticate(other);
    await new Promise((r) => setTimeout(r, 80));
    assert.notEqual(await ttl.authenticate(other), first, "verified again after the TTL");
  });

  it("is bounded: the oldest entry goes first", async () => {
    const path = join(dir, "cache-bound.json");
    writeJwks(path, [k1]);
    const auth = createAuthenticator(options({ file: path }, { verifiedTokenCacheSize: 2 }));
    const [t1, t2, t3] = await Promise.all(
      ["u1", "u2", "u3"].map(async (sub) => `Bearer ${await sign(k1, { sub })}`),
    );
    const p1 = await auth.authenticate(t1 as string);
    const p2 = await auth.authenticate(t2 as string);
    await auth.authenticate(t3 as string);
    assert.equal(await auth.authenticate(t2 as string), p2, "still remembered");
    assert.notEqual(await auth.authenticate(t1 as string), p1, "evicted, verified again");
  });

  it("a failed verification is never remembered", async () => {
    const path = join(dir, "cache-fail.json");
    writeJwks(path, [k1]);
    const auth = createAuthenticator(options({ file: path }));
    const forged = `Bearer ${await sign(stranger, {}, { kid: "k1" })}`;
    await rejectsWith(auth.authenticate(forged), "invalid_token");
    await rejectsWith(auth.authenticate(forged), "invalid_token");
  });
});
