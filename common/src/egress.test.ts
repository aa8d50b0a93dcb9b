import assert from "node:assert/strict";
import { describe, it } from "node:test";
import {
  createEgressMatcher,
  parseEgressEntry,
  parseEgressList,
  specialAddress,
} from "./egress.js";
import { GatewayError } from "./errors.js";

describe("parseEgressEntry", () => {
  it("parses names, wildcards, IP literals and ranges with optional ports", () => {
    assert.deepEqual(parseEgressEntry("PyPI.org"), {
      text: "pypi.org",
      kind: "name",
      host: "pypi.org",
      port: null,
    });
    assert.equal(parseEgressEntry("*.example.com:443").kind, "wildcard");
    assert.equal(parseEgressEntry("*.example.com:443").port, 443);
    assert.equal(parseEgressEntry("203.0.113.7").kind, "ip");
    assert.equal(parseEgressEntry("10.0.0.0/8:80").kind, "cidr");
    assert.deepEqual(parseEgressEntry("[2001:db8::1]:443"), {
      text: "[2001:db8::1]:443",
      kind: "ip",
      host: "2001:db8::1",
      port: 443,
    });
    assert.equal(parseEgressEntry("[fd00::/8]").kind, "cidr");
  });

  it("names a malformed entry (invalid_argument), like the policy", () => {
    for (const bad of [
      "http://x.test",
      "x.test:0",
      "x.test:70000",
      "a..b",
      "300.1.1.1",
      "*",
      "-x.test",
      "[zz::1]",
      "1.2.3.4/40",
      "x.test/8",
      "2001:db8::1",
      "",
    ]) {
      assert.throws(
        () => parseEgressEntry(bad),
        (err: unknown) =>
          err instanceof GatewayError &&
          err.code === "invalid_argument" &&
          err.message.includes(JSON.stringify(bad)),
        bad,
      );
    }
  });

  it("caps the list length", () => {
    assert.throws(() => parseEgressList(Array(65).fill("a.test")), /at most 64/);
  });
});

describe("createEgressMatcher", () => {
  const m = createEgressMatcher(["allowed.test", "*.wild.test:443", "203.0.113.12", "10.0.0.0/8"]);

  it("admits exact names on any port and wildcards below their domain on their port", () => {
    assert.equal(m.admits("allowed.test", 8080)?.text, "allowed.test");
    assert.equal(m.admits("ALLOWED.test.", 80)?.text, "allowed.test");
    assert.equal(m.admits("a.b.wild.test", 443)?.text, "*.wild.test:443");
    assert.equal(m.admits("a.wild.test", 80), null);
    assert.equal(m.admits("wild.test", 443), null);
    assert.equal(m.admits("denied.test", 80), null);
    assert.equal(m.admits("allowed.test.evil.test", 80), null);
    // Never a name the resolver would read differently (cut at a NUL, spaces, slashes).
    assert.equal(m.admits("1.2.3.4\u0000.x.wild.test", 443), null);
    assert.equal(m.admits("evil.com\u0000.wild.test", 443), null);
    assert.equal(m.admits("a b.wild.test", 443), null);
    assert.equal(m.admits("a/b.wild.test", 443), null);
  });

  it("admits IP literals only through ip and cidr entries", () => {
    assert.equal(m.admits("203.0.113.12", 80)?.text, "203.0.113.12");
    assert.equal(m.admits("203.0.113.13", 80), null);
    assert.equal(m.admits("10.9.8.7", 22)?.text, "10.0.0.0/8");
    assert.equal(m.admits("[2001:db8::1]", 443), null);
  });

  it("lets a CIDR entry name a special range", () => {
    assert.equal(m.rangeAllows("10.1.2.3", 80), true);
    assert.equal(m.rangeAllows("127.0.0.1", 80), false);
  });
});

describe("specialAddress", () => {
  it("refuses loopback, private, link-local, metadata and mapped addresses", () => {
    assert.equal(specialAddress("127.0.0.1"), "loopback");
    assert.equal(specialAddress("169.254.169.254"), "link-local (cloud metadata)");
    assert.equal(specialAddress("192.168.1.1"), "private");
    assert.match(specialAddress("fd00:ec2::254") ?? "", /cloud metadata/);
    assert.equal(specialAddress("::ffff:127.0.0.1"), "IPv4-mapped");
    assert.equal(specialAddress("::1"), "loopback");
    assert.equal(specialAddress("203.0.113.10"), null);
    assert.equal(specialAddress("2606:4700::1111"), null);
  });
});
