import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { Hono } from "hono";
import { CONSOLE_CSP, consoleSignInUrl, registerConsole } from "./routes.js";

let dir = "";
const INDEX =
  '<!doctype html><script type="module" src="/console/assets/app-ABCDEFGH.js"></script>';

before(() => {
  dir = mkdtempSync(join(tmpdir(), "console-routes-"));
  mkdirSync(join(dir, "assets"));
  writeFileSync(join(dir, "index.html"), INDEX);
  writeFileSync(join(dir, "assets", "app-ABCDEFGH.js"), "console.log(1)");
  writeFileSync(join(dir, "assets", "app-ABCDEFGH.css"), "body{}");
  writeFileSync(join(dir, "assets", "unhashed.js"), "nope");
});
after(() => rmSync(dir, { recursive: true, force: true }));

function appWith(options: Parameters<typeof registerConsole>[1] = {}): Hono {
  const app = new Hono();
  registerConsole(app, { dir, ...options });
  return app;
}

describe("registerConsole", () => {
  it("serves index.html with the strict CSP, revalidated by ETag", async () => {
    const app = appWith();
    const res = await app.request("/console/");
    assert.equal(res.status, 200);
    assert.equal(await res.text(), INDEX);
    assert.equal(res.headers.get("content-security-policy"), CONSOLE_CSP);
    assert.match(CONSOLE_CSP, /script-src 'self';/);
    assert.doesNotMatch(CONSOLE_CSP, /unsafe-inline|unsafe-eval/);
    assert.match(CONSOLE_CSP, /frame-ancestors 'none'/);
    assert.equal(res.headers.get("x-frame-options"), "DENY");
    assert.equal(res.headers.get("cache-control"), "no-cache");
    const etag = res.headers.get("etag") ?? "";
    assert.ok(etag !== "");
    const again = await app.request("/console/", { headers: { "if-none-match": etag } });
    assert.equal(again.status, 304);
  });

  it("serves hashed assets for a year, immutable, and nothing else", async () => {
    const app = appWith();
    const js = await app.request("/console/assets/app-ABCDEFGH.js");
    assert.equal(js.status, 200);
    assert.equal(js.headers.get("content-type"), "text/javascript; charset=utf-8");
    assert.equal(js.headers.get("cache-control"), "public, max-age=31536000, immutable");
    assert.equal(js.headers.get("x-content-type-options"), "nosniff");
    assert.equal((await app.request("/console/assets/app-ABCDEFGH.css")).status, 200);
    for (const path of [
      "/console/assets/unhashed.js",
      "/console/assets/..%2Findex.html",
      "/console/other",
    ]) {
      const res = await app.request(path);
      assert.equal(res.status, 404, path);
      assert.equal(res.headers.get("content-security-policy"), CONSOLE_CSP, path);
    }
    const bare = await app.request("/console");
    assert.equal(bare.status, 308);
    assert.equal(bare.headers.get("location"), "/console/");
  });

  it("answers 503 with instructions when the console is not built", async () => {
    const warnings: string[] = [];
    const app = new Hono();
    registerConsole(app, { dir: join(dir, "missing"), warn: (m) => warnings.push(m) });
    const res = await app.request("/console/");
    assert.equal(res.status, 503);
    assert.match(await res.text(), /npm run setup/);
    assert.equal(warnings.length, 1);
  });

  it("a one-time sign-in link signs in once, and only with its code", async () => {
    let minted = 0;
    const app = appWith({
      signInLink: {
        code: "s3cret-code",
        mint: async () => `token-${++minted}`,
        expiresAt: Date.now() + 60_000,
      },
    });
    const url = new URL(consoleSignInUrl("http://edge", "s3cret-code"));
    const wrong = await app.request("/console/sign-in?code=guess");
    assert.equal(wrong.status, 410);
    const first = await app.request(url.pathname + url.search);
    assert.equal(first.status, 303);
    assert.equal(first.headers.get("location"), "/console/#token=token-1");
    assert.equal(first.headers.get("cache-control"), "no-store");
    const second = await app.request(url.pathname + url.search);
    assert.equal(second.status, 410);
    assert.match(await second.text(), /already been used/);
    assert.equal(minted, 1);
  });

  it("an expired link does not sign in, and an edge without a link has no sign-in route", async () => {
    const expired = appWith({
      signInLink: { code: "c", mint: async () => "t", expiresAt: Date.now() - 1 },
    });
    assert.equal((await expired.request("/console/sign-in?code=c")).status, 410);
    assert.equal((await appWith().request("/console/sign-in?code=c")).status, 404);
  });
});
