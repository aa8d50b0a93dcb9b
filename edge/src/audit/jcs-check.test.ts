import assert from "node:assert/strict";
import { describe, it } from "node:test";
import canonicalize from "canonicalize";
// The seeded PRNG of the policy corpus, so a failure names a reproducible case.
import { rng } from "../../../common/src/policy/corpus.js";
import { isCanonicalJsonText } from "./jcs-check.js";

/** What the check must answer: the library's verdict on the text. */
function reference(text: string): boolean {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return false;
  }
  try {
    return canonicalize(value) === text;
  } catch {
    return false; // lone surrogates, non-finite numbers
  }
}

const CODE_UNITS = [
  0x00, 0x01, 0x08, 0x09, 0x0a, 0x0c, 0x0d, 0x1f, 0x20, 0x22, 0x2f, 0x5c, 0x41, 0x7a, 0x7f, 0xe9,
  0x2028, 0x4e2d, 0xd83d, 0xde00, 0xdbff, 0xdc00, 0xfeff, 0xfffd, 0x30, 0x31,
];

function randomString(r: () => number): string {
  const len = Math.floor(r() * 6);
  let s = "";
  for (let i = 0; i < len; i++) {
    if (r() < 0.15)
      s += "😀"; // a valid pair
    else s += String.fromCharCode(CODE_UNITS[Math.floor(r() * CODE_UNITS.length)] as number);
  }
  return s;
}

function randomNumber(r: () => number): number {
  const pick = Math.floor(r() * 7);
  if (pick === 0) return Math.floor(r() * 1000) - 500;
  if (pick === 1) return (r() - 0.5) * 10 ** Math.floor(r() * 40 - 20);
  if (pick === 2) return 2 ** Math.floor(r() * 80);
  if (pick === 3) return -0;
  if (pick === 4) return Number.MAX_SAFE_INTEGER + Math.floor(r() * 5);
  if (pick === 5) return 1e21 * (1 + Math.floor(r() * 9));
  return Number.parseFloat(r().toPrecision(1 + Math.floor(r() * 17)));
}

function randomValue(r: () => number, depth: number): unknown {
  const pick = Math.floor(r() * (depth > 3 ? 5 : 7));
  if (pick === 0) return randomString(r);
  if (pick === 1) return randomNumber(r);
  if (pick === 2) return r() < 0.5;
  if (pick === 3) return null;
  if (pick === 4) return randomString(r);
  if (pick === 5)
    return Array.from({ length: Math.floor(r() * 4) }, () => randomValue(r, depth + 1));
  const o: Record<string, unknown> = {};
  for (let i = Math.floor(r() * 5); i > 0; i--) {
    const key = r() < 0.2 ? String(Math.floor(r() * 20)) : randomString(r);
    o[key] = randomValue(r, depth + 1);
  }
  return o;
}

/** Small edits of a canonical text: most make it non-canonical or invalid, some do not. */
function mutate(text: string, r: () => number): string {
  const at = Math.floor(r() * (text.length + 1));
  const edits = [
    () => `${text.slice(0, at)} ${text.slice(at)}`,
    () => text.slice(0, at) + text.slice(at + 1),
    () => `${text.slice(0, at)}\\u0041${text.slice(at)}`,
    () => `${text.slice(0, at)}\\u001F${text.slice(at)}`,
    () => `${text.slice(0, at)}\\/${text.slice(at)}`,
    () => `${text.slice(0, at)}\\ud83d\\ude00${text.slice(at)}`,
    () => `${text.slice(0, at)}.0${text.slice(at)}`,
    () => `${text.slice(0, at)}e1${text.slice(at)}`,
    () => `${text.slice(0, at)}0${text.slice(at)}`,
    () => `${text.slice(0, at)}-${text.slice(at)}`,
    () => text.slice(0, at) + String.fromCharCode(0xd800) + text.slice(at),
    () => `${text.slice(0, at)}\n${text.slice(at)}`,
    () => `${text.slice(0, at)},"a":1${text.slice(at)}`,
    () => `${text.slice(0, at)}"~":1,${text.slice(at)}`,
    () => text.replace(/,/, ", "),
    () => text.toUpperCase(),
  ];
  return (edits[Math.floor(r() * edits.length)] as () => string)();
}

describe("isCanonicalJsonText (RFC 8785 form check)", () => {
  it("agrees with the canonicalize library on generated values and their edits", () => {
    const r = rng(18);
    let canonical = 0;
    let refused = 0;
    for (let n = 0; n < 20_000; n++) {
      const value = randomValue(r, 0);
      let text: string;
      try {
        text = canonicalize(value) as string;
      } catch {
        text = JSON.stringify(value); // lone surrogates: never canonical
      }
      const texts = [text, mutate(text, r), mutate(mutate(text, r), r), JSON.stringify(value)];
      for (const t of texts) {
        const want = reference(t);
        assert.equal(isCanonicalJsonText(t), want, `case ${n}: ${JSON.stringify(t)}`);
        if (want) canonical++;
        else refused++;
      }
    }
    // Both answers are well represented (the generator is not degenerate).
    assert.ok(canonical > 10_000 && refused > 10_000, `${canonical} / ${refused}`);
  });

  it("answers hand-picked texts like the library", () => {
    const cases: [string, boolean][] = [
      ['{"a":1,"b":[true,false,null],"c":"x"}', true],
      ['{"b":1,"a":2}', false], // member order
      ['{"a":1,"a":1}', false], // duplicate member
      ['{"a":1, "b":2}', false], // whitespace
      ['{"a":1.0}', false],
      ['{"a":1e2}', false],
      ['{"a":100}', true],
      ['{"a":1e+21}', true],
      ['{"a":1E+21}', false],
      ['{"a":-0}', false],
      ['{"a":0.000001}', true],
      ['{"a":1e-7}', true],
      ['{"a":"\\u00e9"}', false], // escaped printable
      ['{"a":"é"}', true],
      ['{"a":"\\u001f"}', true],
      ['{"a":"\\u001F"}', false], // uppercase hex
      ['{"a":"\\u000a"}', false], // has a short form
      ['{"a":"\\n\\t\\"\\\\"}', true],
      ['{"a":"\\/"}', false],
      ['{"a":"\\ud800"}', false], // lone surrogate
      ['{"a":"\\ud83d\\ude00"}', false], // pair must be literal
      ['{"a":"😀"}', true],
      ['{"\\n":1,"a":2}', true], // "\n" < "a"
      ['{"10":1,"9":2}', true], // string order, not numeric
      ['{"9":1,"10":2}', false],
      ['{"__proto__":1}', true],
      ['"x"', true],
      ["[]", true],
      ["{}", true],
      ["", false],
      ["{", false],
      ['{"a":1}x', false],
      ["tru", false],
      ["01", false],
    ];
    for (const [text, want] of cases) {
      assert.equal(reference(text), want, `reference disagrees with the table: ${text}`);
      assert.equal(isCanonicalJsonText(text), want, text);
    }
  });

  it("leaves nesting past its depth to the full canonicalizer", () => {
    assert.equal(isCanonicalJsonText(`${"[".repeat(300)}${"]".repeat(300)}`), undefined);
    assert.equal(isCanonicalJsonText(`${"[".repeat(100)}${"]".repeat(100)}`), true);
  });
});
