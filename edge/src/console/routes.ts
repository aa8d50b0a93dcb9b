// The web console's static assets, served by the edge at /console (ADR 0011).
//
// The console is a static single-page app built at setup (scripts/build/console.ts) into
// console/dist: index.html plus content-hashed assets. It talks to the edge only over
// gRPC-Web, from the same origin, so no CORS is involved. Every response here carries a strict
// Content-Security-Policy: scripts and styles from this origin only (no inline script, no
// eval), connections to this origin only, no framing by any origin, Trusted Types required.
import { createHash, timingSafeEqual } from "node:crypto";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { extname, join } from "node:path";
import { fileURLToPath } from "node:url";
import type { Hono } from "hono";

/** Where the console is served. */
export const CONSOLE_PATH = "/console";

/** The one-time sign-in path of a dev edge's console link. */
export const CONSOLE_SIGN_IN_PATH = `${CONSOLE_PATH}/sign-in`;

/**
 * The Content-Security-Policy of every /console response: nothing but this
 * origin's own scripts, styles and gRPC-Web calls; no inline script or style,
 * no eval, no plugins, no base-URI or form hijacking, no framing.
 */
export const CONSOLE_CSP = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  "connect-src 'self'",
  "img-src 'self' data:",
  "font-src 'self'",
  "manifest-src 'self'",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
  "require-trusted-types-for 'script'",
  "trusted-types 'none'",
].join("; ");

/** Headers of every /console response (with the CSP). */
const SECURITY_HEADERS: Readonly<Record<string, string>> = {
  "content-security-policy": CONSOLE_CSP,
  "x-frame-options": "DENY",
  "x-content-type-options": "nosniff",
  "referrer-policy": "no-referrer",
  "cross-origin-opener-policy": "same-origin",
  "cross-origin-resource-policy": "same-origin",
  "permissions-policy": "camera=(), microphone=(), geolocation=(), payment=(), usb=()",
};

/** The default build output: <repo>/console/dist (the release tarball mirrors that layout). */
export const DEFAULT_CONSOLE_DIR = fileURLToPath(new URL("../../../console/dist", import.meta.url));

/** A content-hashed asset name as the build writes it: `app-<hash>.js`. */
const HASHED = /^[A-Za-z0-9_-]+-[A-Z0-9]{8,}\.[a-z0-9]+$/;

const TYPES: Readonly<Record<string, string>> = {
  ".js": "text/javascript; charset=utf-8",
  ".css": "text/css; charset=utf-8",
  ".svg": "image/svg+xml",
  ".png": "image/png",
  ".woff2": "font/woff2",
  ".json": "application/json",
};

/** A one-time sign-in link for the console of a dev edge (`mcp-gateway dev` prints it). */
export interface ConsoleSignInLink {
  /** The secret code in the link; random, at least 128 bits. */
  code: string;
  /** Mints the token the link signs in with (called once, when the link is used). */
  mint: () => Promise<string>;
  /** The link stops working at this time (ms since the epoch), used or not. */
  expiresAt: number;
}

/** Options for {@link registerConsole}. */
export interface ConsoleOptions {
  /** Directory of the built console (index.html and assets/); default {@link DEFAULT_CONSOLE_DIR}. */
  dir?: string;
  /** A one-time sign-in link (dev edges only); without it, /console/sign-in answers 404. */
  signInLink?: ConsoleSignInLink;
  /** Told once at start when the console is not built. */
  warn?: (message: string) => void;
}

/** The console's files, read once at start. */
interface Loaded {
  index: { body: string; etag: string };
  assets: Map<string, { body: Uint8Array; type: string }>;
}

function load(dir: string): Loaded | undefined {
  const indexPath = join(dir, "index.html");
  if (!existsSync(indexPath)) return undefined;
  const index = readFileSync(indexPath, "utf8");
  const assets = new Map<string, { body: Uint8Array; type: string }>();
  const assetDir = join(dir, "assets");
  for (const name of existsSync(assetDir) ? readdirSync(assetDir) : []) {
    const type = TYPES[extname(name)];
    if (type && HASHED.test(name)) {
      assets.set(name, { body: readFileSync(join(assetDir, name)), type });
    }
  }
  const etag = `"${createHash("sha256").update(index).digest("base64url").slice(0, 22)}"`;
  return { index: { body: index, etag }, assets };
}

const NOT_BUILT = `<!doctype html><html lang="en"><meta charset="utf-8"><title>Console not built</title>
<h1>The console is not built</h1><p>Build it with <code>npm run setup</code>
(or <code>node --import tsx scripts/build/console.ts</code>) and restart the edge.</p></html>`;

const LINK_USED = `<!doctype html><html lang="en"><meta charset="utf-8"><title>Sign-in link used</title>
<h1>This sign-in link has already been used or has expired</h1>
<p>Each link printed by <code>mcp-gateway dev</code> signs in once. Restart <code>npm start</code> for a
new one, or mint a token and paste it on the <a href="${CONSOLE_PATH}/">sign-in page</a>:</p>
<pre>npx mcp-gateway token --sub dev-user --roles developer --ttl 8h</pre></html>`;

/** True when `given` is the link's code (constant time). */
function sameCode(given: string, expected: string): boolean {
  const a = createHash("sha256").update(given).digest();
  const b = createHash("sha256").update(expected).digest();
  return timingSafeEqual(a, b);
}

/**
 * Registers the console's routes on the edge's HTTP app: `GET /console/`
 * (index.html, revalidated), `GET /console/assets/<name>-<hash>.<ext>`
 * (cached for a year, immutable), and on a dev edge the one-time
 * `GET /console/sign-in?code=…`, which redirects to the console with a token
 * in the URL fragment (never sent to a server; the console moves it to
 * sessionStorage and removes it from the address bar).
 *
 * @example
 * registerConsole(app, { signInLink: { code, mint, expiresAt } });
 */
export function registerConsole(app: Hono, options: ConsoleOptions = {}): void {
  const dir = options.dir ?? DEFAULT_CONSOLE_DIR;
  const loaded = load(dir);
  if (!loaded)
    options.warn?.(`console not built (${dir}/index.html missing): /console answers 503`);
  let linkUsed = false;

  const respond = (
    body: string | Uint8Array | null,
    status: 200 | 303 | 304 | 308 | 404 | 410 | 503,
    headers: Record<string, string>,
  ) => {
    return new Response(body as ConstructorParameters<typeof Response>[0], {
      status,
      headers: { ...SECURITY_HEADERS, ...headers },
    });
  };
  const html = { "content-type": "text/html; charset=utf-8" };

  app.get(CONSOLE_PATH, () =>
    respond(null, 308, { location: `${CONSOLE_PATH}/`, "cache-control": "no-store" }),
  );
  app.get(`${CONSOLE_PATH}/`, (c) => {
    if (!loaded) return respond(NOT_BUILT, 503, { ...html, "cache-control": "no-store" });
    const headers = { ...html, "cache-control": "no-cache", etag: loaded.index.etag };
    if (c.req.header("if-none-match") === loaded.index.etag) return respond(null, 304, headers);
    return respond(loaded.index.body, 200, headers);
  });
  app.get(`${CONSOLE_PATH}/assets/:name`, (c) => {
    const asset = loaded?.assets.get(c.req.param("name"));
    if (!asset) {
      return respond("not found", 404, {
        "content-type": "text/plain; charset=utf-8",
        "cache-control": "no-store",
      });
    }
    return respond(asset.body, 200, {
      "content-type": asset.type,
      "cache-control": "public, max-age=31536000, immutable",
    });
  });
  app.get(CONSOLE_SIGN_IN_PATH, async (c) => {
    const link = options.signInLink;
    const noStore = { ...html, "cache-control": "no-store" };
    if (!link) return respond("not found", 404, noStore);
    const code = c.req.query("code") ?? "";
    if (linkUsed || Date.now() > link.expiresAt || !sameCode(code, link.code)) {
      return respond(LINK_USED, 410, noStore);
    }
    linkUsed = true;
    const token = await link.mint();
    return respond(null, 303, {
      "cache-control": "no-store",
      location: `${CONSOLE_PATH}/#token=${encodeURIComponent(token)}`,
    });
  });
  app.all(`${CONSOLE_PATH}/*`, () =>
    respond("not found", 404, {
      "content-type": "text/plain; charset=utf-8",
      "cache-control": "no-store",
    }),
  );
}

/** The URL of a one-time sign-in link on the edge at `baseUrl`. */
export function consoleSignInUrl(baseUrl: string, code: string): string {
  return `${baseUrl}${CONSOLE_SIGN_IN_PATH}?code=${encodeURIComponent(code)}`;
}
