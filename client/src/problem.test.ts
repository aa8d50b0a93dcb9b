import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { Code, ConnectError } from "@connectrpc/connect";
import { denyReasons, describeProblem } from "./problem.js";

describe("denyReasons", () => {
  it("splits a policy denial's message into the policy's reasons", () => {
    assert.deepEqual(denyReasons("permission denied: a is not allowed; b is not allowed"), [
      "a is not allowed",
      "b is not allowed",
    ]);
  });
  it("is empty for any other message", () => {
    assert.deepEqual(denyReasons("path escapes the workspace"), []);
    assert.deepEqual(denyReasons(""), []);
  });
});

describe("describeProblem", () => {
  const of = (message: string, code: Code, metadata?: Record<string, string>) =>
    describeProblem(new ConnectError(message, code, metadata));

  it("unauthenticated: expired and rejected tokens both ask to sign in again", () => {
    assert.equal(of("token expired", Code.Unauthenticated).kind, "unauthenticated");
    assert.match(of("token expired", Code.Unauthenticated).summary, /expired\. Sign in again/);
    assert.match(of("bad signature", Code.Unauthenticated).summary, /did not accept.*Sign in/);
  });

  it("a denial without the policy prefix keeps its message and has no reasons", () => {
    const p = of("path escapes the workspace", Code.PermissionDenied);
    assert.equal(p.kind, "permission_denied");
    assert.deepEqual(p.reasons, []);
    assert.match(p.summary, /path escapes the workspace/);
  });

  it("unavailable: a missing runner is told apart from other unavailability", () => {
    assert.equal(of("no runner is available (none)", Code.Unavailable).kind, "runner_unavailable");
    const audit = of("audit trail unavailable", Code.Unavailable);
    assert.equal(audit.kind, "unavailable");
    assert.match(audit.summary, /audit trail unavailable/);
  });

  it("keeps retry-after from the gateway", () => {
    const p = of("rate limit exceeded", Code.ResourceExhausted, { "retry-after": "2" });
    assert.equal(p.kind, "resource_exhausted");
    assert.equal(p.retryAfterSeconds, 2);
  });

  it("anything thrown becomes a problem without a stack trace", () => {
    const p = describeProblem(new Error("boom at /srv/x.ts:3"));
    assert.equal(p.code, Code.Unknown);
    assert.equal(p.kind, "other");
    assert.doesNotMatch(p.summary, /\n\s+at /);
  });
});
