import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { createTaskWriter, type OutputStream } from "./task-output.js";

/** One shared transcript for both streams, as a terminal or `2>&1` would show them. */
function transcript(): { out: OutputStream; err: OutputStream; text: () => string } {
  const parts: string[] = [];
  const sink = (tag: string): OutputStream => ({
    write(data: string | Uint8Array) {
      parts.push(`${tag}${typeof data === "string" ? data : Buffer.from(data).toString("utf8")}`);
    },
  });
  return { out: sink(""), err: sink(""), text: () => parts.join("") };
}

describe("createTaskWriter", () => {
  it("puts a note on its own line after stdout that lacks a final newline (shared destination)", () => {
    const t = transcript();
    const w = createTaskWriter({ stdout: t.out, stderr: t.err, shared: true });
    w.stdout(new TextEncoder().encode("no newline"));
    w.note("[mcp] task timed_out");
    assert.equal(t.text(), "no newline\n[mcp] task timed_out\n");
  });

  it("puts a note on its own line after stderr that lacks a final newline", () => {
    const t = transcript();
    const w = createTaskWriter({ stdout: t.out, stderr: t.err, shared: false });
    w.stderr("warning: partial");
    w.note("[mcp] task failed: runner lost");
    assert.equal(t.text(), "warning: partial\n[mcp] task failed: runner lost\n");
  });

  it("adds nothing after complete lines, and leaves stdout alone when it goes elsewhere", () => {
    const t = transcript();
    const w = createTaskWriter({ stdout: t.out, stderr: t.err, shared: false });
    w.stdout("to a file, no newline");
    w.stderr("line\n");
    w.note("[mcp] sandbox ready");
    assert.equal(t.text(), "to a file, no newlineline\n[mcp] sandbox ready\n");
  });

  it("ends an unterminated last line on a terminal only when asked", () => {
    const t1 = transcript();
    const terminal = createTaskWriter({
      stdout: t1.out,
      stderr: t1.err,
      shared: true,
      endLine: true,
    });
    terminal.stdout("hi");
    terminal.end();
    assert.equal(t1.text(), "hi\n");
    const t2 = transcript();
    const piped = createTaskWriter({ stdout: t2.out, stderr: t2.err, shared: true });
    piped.stdout("hi");
    piped.end();
    assert.equal(t2.text(), "hi", "the task's bytes are not changed when nobody reads a prompt");
  });
});
