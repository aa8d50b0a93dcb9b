import type { LoadedPolicy } from "@open-policy-agent/opa-wasm";

/**
 * Evaluates one entrypoint of a loaded policy and returns its result set as
 * JSON text (`[{"result": …}]`, `[]` when undefined): what
 * `LoadedPolicy.evaluate()` would return, before JSON.parse, so the caller
 * can recognise a result it has seen before without parsing it again.
 * Throws when the policy aborts (e.g. wasm memory exhausted).
 */
export type WasmEvaluator = (input: unknown) => string;

/** The opa_eval export of OPA's wasm ABI 1.2+ (one call: parse input, evaluate, dump JSON). */
type OpaEval = (
  reserved: number,
  entrypoint: number,
  dataAddr: number,
  inputAddr: number,
  inputLen: number,
  heapPtr: number,
  format: number,
) => number;

const PAGE_BYTES = 64 * 1024;

/**
 * Returns an evaluator for `entrypoint` that calls the wasm ABI's one-shot
 * `opa_eval` directly, which is what `LoadedPolicy.evaluate()` does for ABI ≥ 1.2,
 * minus per-call garbage: the input JSON is encoded straight into wasm memory
 * with one reused TextEncoder (`encodeInto`, no intermediate buffer), and the
 * result is located with `indexOf(0)` and decoded with one reused TextDecoder
 * (it is returned as text; see {@link WasmEvaluator}).
 * Falls back to `policy.evaluate()` for modules of an older ABI.
 *
 * Must be created after `policy.setData()`: it captures the data address and
 * the start of the per-evaluation heap.
 *
 * @throws Error when the policy has no such entrypoint.
 */
export function createWasmEvaluator(policy: LoadedPolicy, entrypoint: string): WasmEvaluator {
  const entrypoints = policy.entrypoints as Record<string, number>;
  const id = entrypoints[entrypoint];
  if (!Object.hasOwn(entrypoints, entrypoint) || typeof id !== "number") {
    throw new Error(
      `the bundle has no entrypoint ${entrypoint} (it has: ${Object.keys(entrypoints).join(", ") || "none"})`,
    );
  }
  const instance =
    "instance" in policy.wasmInstance ? policy.wasmInstance.instance : policy.wasmInstance;
  const opaEval = instance.exports.opa_eval as OpaEval | undefined;
  const minor = Number(policy.minorVersion);
  const memory = policy.mem;
  const dataAddr = policy.dataAddr;
  const heapBase = Number(policy.dataHeapPtr);
  if (typeof opaEval !== "function" || !(minor >= 2) || !Number.isSafeInteger(heapBase)) {
    // JSON.stringify gives undefined for an undefined result: the engine then fails closed.
    return (input) => JSON.stringify(policy.evaluate(input, id)) ?? "";
  }
  const encoder = new TextEncoder();
  const decoder = new TextDecoder();
  let bytes = new Uint8Array(memory.buffer);

  return (input) => {
    const json = JSON.stringify(input);
    let inputLen = 0;
    if (json !== undefined && input) {
      // UTF-8 needs at most 3 bytes per UTF-16 code unit; grow only by what is needed.
      if (heapBase + json.length * 3 > memory.buffer.byteLength) {
        const need = heapBase + Buffer.byteLength(json) - memory.buffer.byteLength;
        if (need > 0) memory.grow(Math.ceil(need / PAGE_BYTES));
      }
      if (bytes.buffer !== memory.buffer) bytes = new Uint8Array(memory.buffer);
      const { read, written } = encoder.encodeInto(json, bytes.subarray(heapBase));
      if (read !== json.length) throw new Error("the policy input does not fit in wasm memory");
      inputLen = written;
    }
    const ret = opaEval(
      0,
      id,
      dataAddr,
      inputLen > 0 ? heapBase : 0,
      inputLen,
      heapBase + inputLen,
      0,
    );
    // Evaluation may have grown the memory (a new, larger buffer).
    if (bytes.buffer !== memory.buffer) bytes = new Uint8Array(memory.buffer);
    const end = bytes.indexOf(0, ret);
    if (end < 0) throw new Error("the policy result is not NUL-terminated");
    return decoder.decode(bytes.subarray(ret, end));
  };
}
