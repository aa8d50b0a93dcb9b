import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { POLICY_OPERATIONS } from "@mcp-gateway/common/policy";
import { describeIssues, GATEWAY_TOOLS, gatewayToolDefinitions, toolDefinitions } from "./tools.js";

describe("gateway MCP tools", () => {
  const defs = toolDefinitions(GATEWAY_TOOLS);

  it("every tool performs a policy operation and has object input and output schemas", () => {
    for (const t of GATEWAY_TOOLS) {
      assert.ok(
        (POLICY_OPERATIONS as readonly string[]).includes(t.operation),
        `${t.name}: ${t.operation}`,
      );
      const d = defs.get(t.name);
      assert.ok(d, t.name);
      assert.equal(d.inputSchema.type, "object", t.name);
      assert.equal(d.outputSchema.type, "object", t.name);
      assert.equal(d.inputSchema.$schema, undefined, "no $schema key: 2020-12 is MCP's default");
      assert.equal(d.annotations.title, t.title);
    }
  });

  it("the definitions are plain JSON, as the release build embeds them", () => {
    const list = [...defs.values()];
    assert.deepEqual(JSON.parse(JSON.stringify(list)), list);
    assert.deepEqual([...gatewayToolDefinitions().values()], list);
  });

  it("read-only tools say so and destructive ones are not read-only", () => {
    for (const t of GATEWAY_TOOLS) {
      if (t.annotations.readOnlyHint) assert.equal(t.annotations.destructiveHint, false, t.name);
      if (t.annotations.destructiveHint) assert.equal(t.annotations.readOnlyHint, false, t.name);
    }
    const ro = GATEWAY_TOOLS.filter((t) => t.annotations.readOnlyHint).map((t) => t.name);
    assert.deepEqual(ro.sort(), ["get_task", "get_task_output", "list_directory", "read_file"]);
  });

  it("run_command requires a command and names the bad field", () => {
    const run = GATEWAY_TOOLS.find((t) => t.name === "run_command");
    assert.ok(run);
    assert.deepEqual(defs.get("run_command")?.inputSchema.required, ["command"]);
    const bad = run.input.safeParse({ command: "ls", args: ["-l", 3] });
    assert.equal(bad.success, false);
    if (!bad.success) assert.match(describeIssues(bad.error), /^args\.1: /);
    const missing = run.input.safeParse({});
    assert.equal(missing.success, false);
    if (!missing.success) assert.match(describeIssues(missing.error), /^command: /);
    assert.equal(run.input.safeParse({ command: "ls", network: "everywhere" }).success, false);
  });
});
