import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { describe, it } from "node:test";
import { GatewayError } from "@mcp-gateway/common/errors";
import { commandLine, LIMITS, metadata, taskId, workspaceName, workspacePath } from "./validate.js";

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
    invalid(() => commandLine("echo", new Array(257).fill("a"), {}), /more than 256 args/);
  });

  it("bounds metadata", () => {
    assert.deepEqual(metadata({ team: "a" }), { team: "a" });
    invalid(() => metadata({ k: "v".repeat(1025) }), /longer than 1024/);
  });
});

describe("request bounds are the policy's own (issue 21, finding 3)", () => {
  it("equal the argument and environment limits in policies/data/commands.json", () => {
    const path = new URL("../../../policies/data/commands.json", import.meta.url);
    const data = JSON.parse(readFileSync(path, "utf8")) as {
      gateway: {
        arguments: { max_count: number; max_arg_bytes: number; max_total_bytes: number };
        environment: { max_vars: number; max_value_bytes: number };
      };
    };
    const { arguments: a, environment: e } = data.gateway;
    assert.equal(LIMITS.args, a.max_count);
    assert.equal(LIMITS.argChars, a.max_arg_bytes);
    assert.equal(LIMITS.argvChars, a.max_total_bytes);
    assert.equal(LIMITS.envEntries, e.max_vars);
    assert.equal(LIMITS.envValueChars, e.max_value_bytes);
  });

  it("refuses the red team's 1,000 args of 1,000 bytes before policy, audit or store", () => {
    const args = new Array<string>(1000).fill("x".repeat(1000));
    invalid(() => commandLine("echo", args, {}), /more than 256 args/);
    invalid(
      () => commandLine("echo", new Array<string>(256).fill("x".repeat(1100)), {}),
      /longer than 262144 characters/,
    );
    invalid(() => commandLine("echo", ["x".repeat(65_537)], {}), /argument 0 is longer/);
    invalid(() => commandLine("env", [], { A: "v".repeat(4097) }), /env A is longer/);
    // At the bounds: accepted (characters, not bytes: 65,536 three-byte characters).
    commandLine("echo", ["€".repeat(65_536)], {});
    commandLine("echo", new Array<string>(256).fill("x".repeat(1000)), {});
  });
});
