import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { Code, ConnectError } from "@connectrpc/connect";
import { GatewayError, toConnectError } from "./errors.js";

describe("toConnectError", () => {
  it("keeps a domain error's message and maps its code", () => {
    const err = toConnectError(new GatewayError("not_found", "task task-1 not found"));
    assert.equal(err.code, Code.NotFound);
    assert.equal(err.rawMessage, "task task-1 not found");
  });

  it("maps foreign domain codes (sandbox, workspace, auth) through the one table", () => {
    const sandbox = Object.assign(new Error("bubblewrap not found"), {
      code: "sandbox_unavailable",
    });
    assert.equal(toConnectError(sandbox).code, Code.FailedPrecondition);
    const escapeErr = Object.assign(new Error("path escapes the workspace"), {
      code: "escape_attempt",
    });
    assert.equal(toConnectError(escapeErr).code, Code.PermissionDenied);
  });

  it("carries www-authenticate as response metadata", () => {
    const auth = Object.assign(new Error("token expired"), {
      code: "expired",
      wwwAuthenticate: 'Bearer error="invalid_token"',
    });
    const err = toConnectError(auth);
    assert.equal(err.code, Code.Unauthenticated);
    assert.equal(err.metadata.get("www-authenticate"), 'Bearer error="invalid_token"');
  });

  it("hides unknown errors behind Internal and keeps them in cause", () => {
    const secret = new Error("ENOENT /var/lib/secret/path");
    const err = toConnectError(secret);
    assert.equal(err.code, Code.Internal);
    assert.equal(err.rawMessage, "internal error");
    assert.equal(err.cause, secret);
  });

  it("passes ConnectErrors through untouched", () => {
    const original = new ConnectError("denied", Code.PermissionDenied);
    assert.equal(toConnectError(original), original);
  });
});
