// The web console end to end: headless Chromium (Debian's, through playwright-core) drives the
// real console served by a real edge, with a real runner, both started as processes by the
// integration harness. Each screen is photographed; with UPDATE_SCREENSHOTS=1 the photos are
// written to docs/screenshots/console-*.png (the README shows them).
//
//   node --import tsx --test test/browser/console.test.ts
//   UPDATE_SCREENSHOTS=1 node --import tsx --test test/browser/console.test.ts
import assert from "node:assert/strict";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { type BrowserContext, chromium, type Page } from "playwright-core";
import { buildConsole } from "../../scripts/build/console.js";
import { connectJson, type Gateway, ROOT, runCli, startGateway } from "../integration/harness.js";

const CHROMIUM = "/usr/bin/chromium";
const SHOTS =
  process.env.UPDATE_SCREENSHOTS === "1" ? join(ROOT, "docs", "screenshots") : undefined;
const WS = "console-ws";

let gw: Gateway | undefined;
let context: BrowserContext | undefined;
let profileDir = "";
let tmp = "";
let frameServer: Server | undefined;
const tokens = { dev: "", auditor: "" };
/** The developer's tab: one page across the tests, so its sessionStorage (recent tasks) lives on. */
let dev: Page | undefined;

function gateway(): Gateway {
  assert.ok(gw, "gateway started");
  return gw;
}

/** Saves a screenshot as docs/screenshots/console-<name>.png (UPDATE_SCREENSHOTS=1) or in tmp. */
async function shoot(page: Page, name: string, fullPage = true): Promise<void> {
  const file = join(SHOTS ?? tmp, `console-${name}.png`);
  mkdirSync(join(file, ".."), { recursive: true });
  await page.screenshot({ path: file, fullPage });
  assert.equal(readFileSync(file).subarray(1, 4).toString(), "PNG", `${file} is a PNG`);
}

/** Opens a new tab (fresh sessionStorage) on the console and signs in with `token`. */
async function signIn(token: string, sub: string): Promise<Page> {
  assert.ok(context);
  const page = await context.newPage();
  const errors: string[] = [];
  page.on("pageerror", (e) => errors.push(String(e)));
  await page.goto(`${gateway().url}/console/`);
  await page.getByLabel("Access token", { exact: true }).fill(token);
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.locator(`.who .user[data-sub="${sub}"]`).waitFor();
  assert.deepEqual(errors, [], "no uncaught errors in the page");
  return page;
}

/** Runs a command line from the Run view; resolves when the task view shows up. */
async function run(page: Page, commandLine: string): Promise<void> {
  await page.getByRole("link", { name: "Run" }).click();
  await page.getByLabel("Workspace", { exact: true }).fill(WS);
  await page.getByLabel("Command", { exact: true }).fill(commandLine);
  await page.getByRole("button", { name: "Run", exact: true }).click();
}

/** The status badge of the task on screen. */
function status(page: Page) {
  return page.locator(".task .status .badge");
}

async function readFileJson(path: string): Promise<{ status: number; text: string }> {
  const r = await connectJson(gateway().url, "ReadFile", { workspace: WS, path }, tokens.dev);
  const content = typeof r.body.content === "string" ? r.body.content : "";
  return { status: r.status, text: Buffer.from(content, "base64").toString("utf8") };
}

before(async () => {
  if (!existsSync(CHROMIUM)) {
    throw new Error(
      `${CHROMIUM} is missing: the browser test needs Debian's chromium. Run: bash scripts/install-browser.sh`,
    );
  }
  // The assets setup builds; built again here so the test always runs the current source.
  const built = await buildConsole();
  assert.ok(built.assets.some((a) => a.name.endsWith(".js")));
  tmp = mkdtempSync(join(tmpdir(), "mcp-console-"));
  const config = join(tmp, "edge.json");
  // Tasks wait at most a second for a runner (the last case stops the runner).
  writeFileSync(config, JSON.stringify({ queueTimeoutMs: 1000 }));
  gw = await startGateway({ edgeArgs: ["--config", config] });
  [tokens.dev, tokens.auditor] = await Promise.all([
    gw.token("console-dev", ["developer"]),
    gw.token("console-auditor", ["auditor"]),
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
    viewport: { width: 1100, height: 760 },
    deviceScaleFactor: 1,
  });
  // A page on another origin that tries to frame the console.
  frameServer = createServer((_req, res) => {
    res
      .writeHead(200, { "content-type": "text/html" })
      .end(`<!doctype html><iframe id="f" src="${gateway().url}/console/"></iframe>`);
  });
  await new Promise<void>((r) => frameServer?.listen(0, "127.0.0.1", r));
});

after(async () => {
  await context?.close();
  await gw?.stop();
  frameServer?.close();
  if (profileDir) rmSync(profileDir, { recursive: true, force: true });
  if (tmp) rmSync(tmp, { recursive: true, force: true });
});

describe("the web console against a real edge and runner", () => {
  it("serves the console with a strict CSP, hashed immutable assets, same origin", async () => {
    const res = await fetch(`${gateway().url}/console/`);
    assert.equal(res.status, 200);
    const csp = res.headers.get("content-security-policy") ?? "";
    for (const d of [
      "default-src 'none'",
      "script-src 'self'",
      "connect-src 'self'",
      "frame-ancestors 'none'",
      "require-trusted-types-for 'script'",
    ]) {
      assert.ok(csp.includes(d), `CSP has ${d}: ${csp}`);
    }
    assert.doesNotMatch(csp, /unsafe-inline|unsafe-eval/);
    const html = await res.text();
    assert.doesNotMatch(html, /<script>|<script [^>]*>[^<]/, "no inline script in index.html");
    const src = /src="(\/console\/assets\/main-[A-Z0-9]+\.js)"/.exec(html)?.[1];
    assert.ok(src, "index.html names the hashed bundle");
    const asset = await fetch(`${gateway().url}${src}`);
    assert.equal(asset.status, 200);
    assert.equal(asset.headers.get("cache-control"), "public, max-age=31536000, immutable");
  });

  it("signs in by pasting a token; a token the edge rejects sends the person back to sign in", async () => {
    dev = await signIn(tokens.dev, "console-dev");
    assert.equal(
      await dev.getByRole("link", { name: "Audit" }).count(),
      0,
      "no Audit for a developer",
    );

    // A well-formed token signed by another key: the edge rejects it on the first call.
    const foreign = await runCli(
      ["token", "--sub", "mallory", "--roles", "developer", "--ttl", "1h"],
      { MCP_GATEWAY_DATA_DIR: join(tmp, "other") },
    );
    assert.equal(foreign.code, 0, foreign.stderr);
    const page = await signIn(foreign.stdout.trim(), "mallory");
    await run(page, "echo hi");
    await page.locator('[data-kind="signed-out"]').waitFor();
    assert.match(
      (await page.locator('[data-kind="signed-out"]').textContent()) ?? "",
      /did not accept your token\. Sign in again/,
    );
    assert.equal(
      await page.getByLabel("Access token", { exact: true }).count(),
      1,
      "the sign-in form is back",
    );
    await shoot(page, "sign-in"); // the form, saying why the person is back
    await page.close();
  });

  it("runs a command and shows its output while it runs, then exit code, duration and usage", async () => {
    assert.ok(dev);
    // The command prints a line, then waits for a file the test writes: the line must be on
    // screen while the task is still running (no timing involved).
    await run(dev, `sh -c 'echo started; while [ ! -e go ]; do sleep 0.2; done; echo finished'`);
    await dev.locator("#output", { hasText: "started" }).waitFor();
    assert.equal(await status(dev).getAttribute("data-status"), "RUNNING");
    assert.doesNotMatch((await dev.locator("#output").textContent()) ?? "", /finished/);
    await shoot(dev, "run-streaming");
    const w = await connectJson(
      gateway().url,
      "WriteFile",
      { workspace: WS, path: "go", content: "" },
      tokens.dev,
    );
    assert.equal(w.status, 200, JSON.stringify(w.body));
    await dev.locator('.task .status .badge[data-status="COMPLETED"]').waitFor();
    await dev.locator('.run-result[data-state="done"]').waitFor();
    assert.equal(await dev.locator("#output").textContent(), "started\nfinished\n");
    assert.equal(await dev.locator('[data-fact="exit-code"]').textContent(), "0");
    assert.match(
      (await dev.locator('[data-fact="duration"]').textContent()) ?? "",
      /\d+(\.\d)? (ms|s)/,
    );
    assert.match((await dev.locator('[data-fact="cpu"]').textContent()) ?? "", /user, .* system/);
    assert.equal(await dev.locator('[data-fact="truncated"]').textContent(), "no");
    assert.match((await dev.locator('[data-fact="runner"]').textContent()) ?? "", /^runner-local/);
    await shoot(dev, "run");
  });

  it("cancels a long-running command", async () => {
    assert.ok(dev);
    await run(dev, "sleep 300");
    await dev.locator('.task .status .badge[data-status="RUNNING"]').waitFor();
    await dev.getByRole("button", { name: "Cancel" }).click();
    await dev.locator('.task .status .badge[data-status="CANCELLED"]').waitFor();
    await dev.locator('.run-result[data-state="done"]').waitFor();
    assert.match((await dev.locator('[data-fact="reason"]').textContent()) ?? "", /cancel/i);
  });

  it("a denied command shows the policy's reasons, and nothing runs", async () => {
    assert.ok(dev);
    await run(dev, "sudo reboot");
    const problem = dev.locator('.problem[data-kind="permission_denied"]');
    await problem.waitFor();
    assert.match((await problem.textContent()) ?? "", /The policy denied this request/);
    const reasons = await problem.locator("li").allTextContents();
    assert.ok(
      reasons.some((r) => r.includes("privilege escalation (sudo) is not allowed")),
      `reasons on screen: ${reasons.join(" | ")}`,
    );
    assert.equal(await dev.locator(".task").count(), 0, "no task view: nothing was run");
    await shoot(dev, "denied");
  });

  it("uploads, views, edits and deletes a workspace file", async () => {
    assert.ok(dev);
    await dev.getByRole("link", { name: "Files" }).click();
    await dev.getByLabel("Workspace", { exact: true }).fill(WS);
    await dev.getByRole("button", { name: "Open" }).click();
    await dev.locator('tr[data-name="go"]').waitFor();
    await dev.getByLabel("Upload files to this folder", { exact: true }).setInputFiles({
      name: "notes.txt",
      mimeType: "text/plain",
      buffer: Buffer.from("first draft\n"),
    });
    await dev.locator('tr[data-name="notes.txt"]').waitFor();
    assert.equal((await readFileJson("notes.txt")).text, "first draft\n");

    await dev.getByRole("button", { name: "notes.txt", exact: true }).click();
    const editor = dev.getByLabel("Content of notes.txt", { exact: true });
    assert.equal(await editor.inputValue(), "first draft\n");
    await editor.fill("second draft\nwith two lines\n");
    await dev.getByRole("button", { name: "Save" }).click();
    await dev.locator(".status-line", { hasText: "Saved notes.txt" }).waitFor();
    assert.equal((await readFileJson("notes.txt")).text, "second draft\nwith two lines\n");
    await shoot(dev, "files");

    await dev.getByRole("button", { name: "Delete notes.txt" }).click();
    await dev.getByRole("button", { name: "Yes, delete" }).click();
    await dev.locator(".status-line", { hasText: "Deleted notes.txt" }).waitFor();
    assert.equal(
      await dev.locator('tr[data-name="notes.txt"]').count(),
      0,
      "the listing was reloaded",
    );
    assert.equal((await readFileJson("notes.txt")).status, 404);
  });

  it("lists this tab's recent tasks and reopens one with its output replayed", async () => {
    assert.ok(dev);
    await dev.getByRole("link", { name: "Tasks" }).click();
    const rows = dev.locator("table.list tbody tr");
    await rows.first().waitFor();
    const text = (await rows.allTextContents()).join("\n");
    assert.match(text, /sleep 300/);
    assert.match(text, /echo started/);
    await shoot(dev, "tasks");
    await dev.getByRole("link", { name: /echo started/ }).click();
    await dev.locator('.run-result[data-state="done"]').waitFor();
    assert.equal(await dev.locator("#output").textContent(), "started\nfinished\n");
    assert.equal(await dev.locator('[data-fact="exit-code"]').textContent(), "0");
  });

  it("a developer has no audit view: the nav hides it and the edge denies it with reasons", async () => {
    assert.ok(dev);
    assert.equal(await dev.getByRole("link", { name: "Audit" }).count(), 0);
    await dev.goto(`${gateway().url}/console/#/audit`);
    const problem = dev.locator('.problem[data-kind="permission_denied"]');
    await problem.waitFor();
    assert.equal(await dev.locator("table.audit").count(), 0);
  });

  it("an auditor reads the audit trail: decisions with reasons, filters, chain state", async () => {
    const page = await signIn(tokens.auditor, "console-auditor");
    await page.getByRole("link", { name: "Audit" }).click();
    await page.locator('main[data-state="done"]').waitFor();
    const denied = page.locator('tr[data-decision="deny"]', { hasText: "sudo" });
    assert.ok((await denied.count()) >= 1, "the developer's denied sudo is listed");
    assert.match(
      (await denied.first().locator(".reasons-cell").textContent()) ?? "",
      /privilege escalation \(sudo\) is not allowed/,
    );
    assert.ok(
      (await page.locator('tr[data-decision="allow"]', { hasText: "console-dev" }).count()) >= 1,
    );
    assert.equal(await page.locator('[data-chain="consistent"]').count(), 1);
    await shoot(page, "audit", false);

    // Filter: denials only.
    await page.getByLabel("Decision", { exact: true }).selectOption("deny");
    await page.getByRole("button", { name: "Apply" }).click();
    await page.waitForURL(/decision=deny/);
    await page.locator('main[data-state="done"]').waitFor();
    const decisions = await page
      .locator("table.audit tbody tr")
      .evaluateAll((rows) => rows.map((r) => r.getAttribute("data-decision")));
    assert.ok(decisions.length >= 1);
    assert.deepEqual([...new Set(decisions)], ["deny"]);
    await shoot(page, "audit-denials");
    await page.close();
  });

  it("CSP: an inline script injected into the page does not run; the console still works", async () => {
    assert.ok(context);
    const page = await context.newPage();
    const violations: string[] = [];
    page.on("console", (m) => violations.push(m.text()));
    await page.route(`${gateway().url}/console/`, async (route) => {
      const res = await route.fetch();
      const body = (await res.text()).replace(
        "<body>",
        '<body><script>window.__inlineRan = true</script><img src="data:," onerror="window.__handlerRan = true" onload="window.__handlerRan = true">',
      );
      await route.fulfill({ response: res, body });
    });
    await page.goto(`${gateway().url}/console/`);
    await page.getByLabel("Access token", { exact: true }).waitFor();
    assert.equal(await page.evaluate("window.__inlineRan"), undefined);
    assert.equal(await page.evaluate("window.__handlerRan"), undefined);
    assert.ok(
      violations.some((v) => /Content Security Policy/.test(v) && /inline/i.test(v)),
      `a CSP refusal was reported: ${violations.join(" | ")}`,
    );
    await page.close();
  });

  it("CSP: a page on another origin cannot frame the console", async () => {
    assert.ok(context && frameServer);
    const page = await context.newPage();
    const refused = page.waitForEvent("console", {
      predicate: (m) => m.text().includes("frame-ancestors"),
      timeout: 15_000,
    });
    const origin = `http://127.0.0.1:${(frameServer.address() as AddressInfo).port}`;
    await page.goto(`${origin}/`);
    // Chromium reports the refusal naming the directive ...
    assert.match((await refused).text(), /frame-ancestors 'none'.*blocked/);
    // ... and the frame holds its error page, never the console.
    const child = page.frames().find((f) => f !== page.mainFrame());
    assert.ok(child, "the iframe exists");
    assert.equal(await page.frameLocator("#f").locator("#app").count(), 0);
    assert.ok(!child.url().includes("/console/") || (await child.locator("#app").count()) === 0);
    await page.close();
  });

  it("is usable on a narrow window", async () => {
    assert.ok(dev);
    await dev.setViewportSize({ width: 390, height: 844 });
    await dev.goto(`${gateway().url}/console/#/run`);
    await dev.getByLabel("Command", { exact: true }).fill("ls -la");
    const width = Number(await dev.evaluate("document.documentElement.scrollWidth"));
    assert.ok(width <= 390, `no horizontal scrolling (${width}px)`);
    await shoot(dev, "narrow");
    await dev.setViewportSize({ width: 1100, height: 760 });
  });

  it("says so when no runner is available", async () => {
    assert.ok(dev);
    await gateway().runner.stop();
    await run(dev, "echo nobody-runs-me");
    const note = dev.locator('[data-kind="runner_unavailable"]');
    await note.waitFor({ timeout: 30_000 });
    assert.match(
      (await note.textContent()) ?? "",
      /No runner was available, so this task did not run/,
    );
    assert.equal(await status(dev).getAttribute("data-status"), "FAILED");
    await shoot(dev, "runner-unavailable");
  });
});
