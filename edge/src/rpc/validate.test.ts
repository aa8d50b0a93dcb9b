import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { GatewayError } from "@mcp-gateway/common/errors";
import { commandLine, metadata, taskId, workspaceName, workspacePath } from "./validate.js";

const invalid = (fn: () => unknown, message: RegExp) =>
  assert.throws(
    fn,
    (err: unknown) =>
      err instanceof GatewayError && err.code === "invalid_argument" && message.test(err.message),
  );

describe("request validation", () => {
  it("accepts and defaults workspace names, refuses traversal and odd characters", () => {
    assert.equal(workspaceName(""), "default");
    assert.equal(workspaceName("team-a.1_x"), "team-a.1_x");
    invalid(() => workspaceName(".."), /invalid/);
    invalid(() => workspaceName("a/b"), /invalid/);
    invalid(() => workspaceName("x".repeat(65)), /invalid/);
  });

  it("accepts task-<uuid> only", () => {
    assert.equal(
      taskId("task-4494d15d-1780-4a6e-8f91-588aa969b87a"),
      "task-4494d15d-1780-4a6e-8f91-588aa969b87a",
    );
    invalid(() => taskId("task-1"), /expected task-<uuid>/);
    invalid(() => taskId("../../etc/passwd"), /expected task-<uuid>/);
  });

  it("refuses absolute paths, '..' segments and NUL bytes in workspace paths", () => {
    assert.equal(workspacePath("a/b.txt", "path", false), "a/b.txt");
    invalid(() => workspacePath("/etc/passwd", "path", false), /relative/);
    invalid(() => workspacePath("a/../../b", "path", false), /'\.\.'/);
    invalid(() => workspacePath("a\0b", "path", false), /NUL/);
    invalid(() => workspacePath("", "path", false), /required/);
    assert.equal(workspacePath("", "cwd", true), "");
  });

  it("bounds command lines and environment names", () => {
    commandLine("echo", ["hi"], { LANG: "C" });
    invalid(() => commandLine(" ", [], {}), /command is required/);
    invalid(() => commandLine("echo", ["a\0"], {}), /NUL/);
    invalid(() => commandLine("echo", [], { "BAD-NAME": "x" }), /env name/);
    invalid(() => commandLine("echo", new Array(1025).fill("a"), {}), /more than 1024 args/);
  });

  it("bounds metadata", () => {
    assert.deepEqual(metadata({ team: "a" }), { team: "a" });
    invalid(() => metadata({ k: "v".repeat(1025) }), /longer than 1024/);
  });
});
