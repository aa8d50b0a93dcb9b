// `mcp-gateway dev` (what `npm start` runs) prints the console's URL and a one-time sign-in
// link; the link signs in exactly once, with a token the edge accepts.
import assert from "node:assert/strict";
import { chmodSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { connectJson, type Proc, startProc } from "./harness.js";

let dev: Proc | undefined;
let dataDir = "";
let url = "";
let link = "";
let consoleUrl = "";

before(async () => {
  dataDir = mkdtempSync(join(tmpdir(), "mcp-dev-console-"));
  chmodSync(dataDir, 0o711);
  const started = await startProc(["dev", "--port", "0"], /sign in once with: (http:\/\/\S+)/, {
    MCP_GATEWAY_DATA_DIR: dataDir,
  });
  dev = started.proc;
  link = started.match[1] as string;
  url = /listening on (http:\/\/\S+)/.exec(dev.stderr())?.[1] ?? "";
  consoleUrl = /Console: (http:\/\/\S+)/.exec(dev.stderr())?.[1] ?? "";
});

after(async () => {
  await dev?.stop();
  rmSync(dataDir, { recursive: true, force: true });
});

describe("mcp-gateway dev and the console", () => {
  it("prints the console URL, which serves the console", async () => {
    assert.equal(consoleUrl, `${url}/console/`);
    const res = await fetch(consoleUrl);
    assert.equal(res.status, 200);
    assert.match(await res.text(), /<script type="module" src="\/console\/assets\/main-/);
  });

  it("the one-time link signs in once, with a dev token the edge accepts", async () => {
    assert.ok(link.startsWith(`${url}/console/sign-in?code=`), link);
    const first = await fetch(link, { redirect: "manual" });
    assert.equal(first.status, 303);
    const location = first.headers.get("location") ?? "";
    const token = decodeURIComponent(/^\/console\/#token=(.+)$/.exec(location)?.[1] ?? "");
    assert.ok(token.split(".").length === 3, `a JWT in the fragment: ${location}`);
    const again = await fetch(link, { redirect: "manual" });
    assert.equal(again.status, 410, "the link works once");

    // The token signs in as dev-user with developer + auditor: both run and read the audit trail.
    const audit = await connectJson(url, "ListAuditEvents", { pageSize: 5 }, token);
    assert.equal(audit.status, 200, JSON.stringify(audit.body));
    const exec = await connectJson(url, "ExecuteCommand", { command: "true" }, token);
    assert.equal(exec.status, 200, JSON.stringify(exec.body));
  });
});
