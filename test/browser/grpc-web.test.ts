// Browser end-to-end: a page in headless Chromium calls the edge over gRPC-Web
// (@connectrpc/connect-web) from another origin, and a screenshot records what
// a person sees. Needs Debian's chromium: `bash scripts/install-browser.sh`.
//
//   node --import tsx --test test/browser/grpc-web.test.ts
//   UPDATE_SCREENSHOTS=1 node --import tsx --test test/browser/grpc-web.test.ts
//     (also writes docs/screenshots/browser-grpc-web.png)
import assert from "node:assert/strict";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { build } from "esbuild";
import { type BrowserContext, chromium, type Page } from "playwright-core";
import { type Gateway, ROOT, runCli, startGateway } from "../integration/harness.js";

const CHROMIUM = "/usr/bin/chromium";
const APP = join(import.meta.dirname, "app");
const SCREENSHOT = join(ROOT, "docs", "screenshots", "browser-grpc-web.png");

/** What the page leaves in window.__result (see app/main.ts). */
interface PageResult {
  state: "done" | "error";
  taskId: string;
  stdout: string;
  status: string;
  exitCode: number | null;
  error: string;
}

/** One HTTP request the browser made, as Playwright saw it. */
interface SeenRequest {
  method: string;
  url: string;
  headers: Record<string, string>;
}

/** An HTTP response the browser received, as Playwright saw it. */
interface SeenResponse {
  url: string;
  status: number;
  headers: Record<string, string>;
}

let gw: Gateway | undefined;
let context: BrowserContext | undefined;
let profileDir: string | undefined;
let tmp: string | undefined;
const servers: Server[] = [];
let allowedOrigin = "";
let refusedOrigin = "";
/** Tokens of the two cases' principals (distinct subjects, so audit records tell them apart). */
const tokens = { alice: "", mallory: "" };

/** Serves the page and its bundle on 127.0.0.1 at a free port; resolves to its origin. */
async function servePage(html: string, bundle: string): Promise<string> {
  const server = createServer((req, res) => {
    const path = new URL(req.url ?? "/", "http://page").pathname;
    if (path === "/") {
      res.writeHead(200, { "content-type": "text/html; charset=utf-8" }).end(html);
    } else if (path === "/app.js") {
      res.writeHead(200, { "content-type": "text/javascript; charset=utf-8" }).end(bundle);
    } else {
      res.writeHead(404).end();
    }
  });
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

/** Opens the page at `origin` with the edge URL and a token, and waits until it settled. */
async function openPage(
  origin: string,
  token: string,
): Promise<{
  page: Page;
  result: PageResult;
  requests: SeenRequest[];
  responses: SeenResponse[];
  consoleLines: string[];
}> {
  assert.ok(context && gw);
  const page = await context.newPage();
  const requests: SeenRequest[] = [];
  const responses: SeenResponse[] = [];
  const pending: Promise<unknown>[] = [];
  page.on("request", (r) => {
    pending.push(
      r
        .allHeaders()
        .then((headers) => requests.push({ method: r.method(), url: r.url(), headers })),
    );
  });
  page.on("response", (r) => {
    pending.push(
      r
        .allHeaders()
        .then((headers) => responses.push({ url: r.url(), status: r.status(), headers })),
    );
  });
  const errors: string[] = [];
  page.on("pageerror", (e) => errors.push(String(e)));
  const consoleLines: string[] = [];
  page.on("console", (m) => consoleLines.push(m.text()));
  const query = new URLSearchParams({ baseUrl: gw.url, token });
  await page.goto(`${origin}/?${query}`);
  await page.waitForSelector('body[data-state="done"], body[data-state="error"]', {
    timeout: 30_000,
  });
  assert.deepEqual(errors, [], "uncaught errors in the page");
  const result = (await page.evaluate("window.__result")) as PageResult;
  await Promise.all(pending);
  return { page, result, requests, responses, consoleLines };
}

/** Audit records of the gateway's data dir, via `mcp-gateway audit export`. */
async function auditRecords(): Promise<
  Array<{ operation: string; outcome: string; principal: { sub?: string } | null }>
> {
  assert.ok(gw);
  const r = await runCli(["audit", "export", "--format", "jsonl"], {
    MCP_GATEWAY_DATA_DIR: gw.dataDir,
  });
  assert.equal(r.code, 0, r.stderr);
  return r.stdout
    .trim()
    .split("\n")
    .filter((l) => l !== "")
    .map((l) => JSON.parse(l));
}

before(async () => {
  if (!existsSync(CHROMIUM)) {
    throw new Error(
      `${CHROMIUM} is missing: the browser test needs Debian's chromium. Run: bash scripts/install-browser.sh`,
    );
  }
  const bundled = await build({
    entryPoints: [join(APP, "main.ts")],
    bundle: true,
    format: "esm",
    platform: "browser",
    target: "es2022",
    write: false,
    logLevel: "silent",
  });
  const bundle = bundled.outputFiles[0]?.text ?? "";
  assert.ok(bundle.includes("application/grpc-web"), "the bundle contains the gRPC-Web transport");
  const html = readFileSync(join(APP, "index.html"), "utf8");
  allowedOrigin = await servePage(html, bundle);
  refusedOrigin = await servePage(html, bundle);

  tmp = mkdtempSync(join(tmpdir(), "mcp-browser-"));
  const config = join(tmp, "edge.json");
  writeFileSync(config, JSON.stringify({ corsOrigins: [allowedOrigin] }));
  gw = await startGateway({ edgeArgs: ["--config", config] });
  [tokens.alice, tokens.mallory] = await Promise.all([
    gw.token("browser-alice", ["developer"]),
    gw.token("browser-mallory", ["developer"]),
  ]);

  profileDir = mkdtempSync(join(tmpdir(), "mcp-chromium-"));
  context = await chromium.launchPersistentContext(profileDir, {
    executablePath: CHROMIUM,
    headless: true,
    args: [
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
    ],
    viewport: { width: 860, height: 480 },
    deviceScaleFactor: 1,
  });
});

after(async () => {
  await context?.close();
  await gw?.stop();
  for (const s of servers) s.close();
  if (profileDir) rmSync(profileDir, { recursive: true, force: true });
  if (tmp) rmSync(tmp, { recursive: true, force: true });
});

describe("browser → edge over gRPC-Web", () => {
  it("an allowed origin runs a command, follows its output stream and renders the result", async () => {
    const token = tokens.alice;
    const { page, result, requests, responses } = await openPage(allowedOrigin, token);

    assert.equal(result.state, "done", `page error: ${result.error}`);
    assert.equal(result.status, "COMPLETED");
    assert.equal(result.exitCode, 0);
    assert.match(result.taskId, /^task-[0-9a-f-]{36}$/);
    assert.equal(result.stdout, "hello from the browser\n");
    // What a person sees on the page.
    assert.equal(await page.textContent("#output"), "hello from the browser\n");
    assert.equal(await page.textContent("#status"), "COMPLETED");
    assert.equal(await page.textContent("#task-id"), result.taskId);
    assert.equal(await page.textContent("#exit-code"), "0");
    assert.match((await page.textContent("#runner")) ?? "", /^runner-local/);

    // The calls really were gRPC-Web, cross-origin, with the bearer token.
    for (const method of ["ExecuteCommand", "StreamTaskOutput", "GetTaskStatus"]) {
      const url = `${gw?.url}/mcp.McpService/${method}`;
      const req = requests.find((r) => r.url === url && r.method === "POST");
      assert.ok(req, `no POST ${url} among ${requests.map((r) => r.url).join(", ")}`);
      assert.equal(req.headers["content-type"], "application/grpc-web+proto");
      assert.equal(req.headers["x-grpc-web"], "1");
      assert.equal(req.headers.origin, allowedOrigin);
      assert.equal(req.headers.authorization, `Bearer ${token}`);
      const res = responses.find((r) => r.url === url);
      assert.equal(res?.status, 200);
      assert.equal(res?.headers["content-type"], "application/grpc-web+proto");
      assert.equal(res?.headers["access-control-allow-origin"], allowedOrigin);
    }
    assert.notEqual(new URL(allowedOrigin).origin, new URL(gw?.url ?? "").origin);

    const shotDir = process.env.UPDATE_SCREENSHOTS === "1" ? undefined : tmp;
    const shot = shotDir ? join(shotDir, "browser-grpc-web.png") : SCREENSHOT;
    mkdirSync(join(shot, ".."), { recursive: true });
    await page.screenshot({ path: shot });
    assert.ok(readFileSync(shot).subarray(1, 4).toString() === "PNG", `${shot} is a PNG`);
    await page.close();

    const records = await auditRecords();
    assert.ok(
      records.some(
        (r) =>
          r.operation === "execute" &&
          r.outcome === "allowed" &&
          r.principal?.sub === "browser-alice",
      ),
      "the allowed origin's ExecuteCommand is audited",
    );
  });

  it("an origin not on the allowlist is blocked by the browser and nothing runs", async () => {
    const token = tokens.mallory;
    const { page, result, requests, consoleLines } = await openPage(refusedOrigin, token);

    assert.equal(result.state, "error");
    assert.equal(result.taskId, "");
    // connect-web turns the browser's CORS rejection (a fetch TypeError) into a ConnectError.
    assert.match(result.error, /^(Unknown|Unavailable): .*fetch/i);
    // ... and it was CORS that refused it (the edge is up: the first case used it).
    assert.ok(
      consoleLines.some((m) =>
        m.includes(`from origin '${refusedOrigin}' has been blocked by CORS policy`),
      ),
      `no CORS refusal in the console: ${consoleLines.join(" | ")}`,
    );
    assert.equal(await page.textContent("#status"), "FAILED");
    assert.equal(await page.textContent("#error"), result.error);
    assert.equal(await page.textContent("#task-id"), "–");
    const url = `${gw?.url}/mcp.McpService/ExecuteCommand`;
    assert.ok(
      requests.some((r) => r.url === url),
      "the page did try ExecuteCommand",
    );
    await page.close();

    const records = await auditRecords();
    const mallory = records.filter((r) => r.principal?.sub === "browser-mallory");
    assert.deepEqual(
      mallory.map((r) => `${r.operation}:${r.outcome}`),
      [],
      "no audit record (so no execute) for the refused origin's principal",
    );
  });
});
