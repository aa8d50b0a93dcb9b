import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { parseSize } from "./client.js";

describe("exec --memory", () => {
  it("reads binary units and plain bytes", () => {
    assert.equal(parseSize("--memory", "512M"), 512n * 1024n * 1024n);
    assert.equal(parseSize("--memory", "1g"), 1024n ** 3n);
    assert.equal(parseSize("--memory", "64KiB"), 64n * 1024n);
    assert.equal(parseSize("--memory", "1048576"), 1048576n);
  });
  it("refuses anything else with the flag's name", () => {
    assert.throws(() => parseSize("--memory", "lots"), /--memory lots: a size such as 512M/);
    assert.throws(() => parseSize("--memory", "-1G"), /--memory/);
  });
});
