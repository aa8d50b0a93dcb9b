import type { EgressObligation, Obligations } from "./decision.js";
import { LIMIT_NAMES } from "./decision.js";
import type { RequestedNetwork, SandboxLimits } from "./input.js";

/** What the client asked for, before obligations are applied. */
export interface RequestedSandbox {
  /** Requested timeout in seconds; 0 (or less) means "the cap". */
  timeout_seconds: number;
  /** Requested network mode. */
  network: RequestedNetwork;
  /** Requested limits; 0 (or less) means "the cap". */
  limits: SandboxLimits;
}

/** What the runner enforces. */
export interface EffectiveSandbox {
  /** Timeout in seconds, ≤ the obligation. */
  timeout_seconds: number;
  /** "host" ("restricted") only when both the request and the obligation say so. */
  network: "none" | "host" | "restricted";
  /** With "restricted": the hosts the egress proxy admits and its caps (the obligation's). */
  egress?: EgressObligation;
  /** Limits, each ≤ its obligation. */
  limits: SandboxLimits;
}

function tighten(requested: number, cap: number): number {
  if (!Number.isFinite(requested) || requested <= 0) return cap;
  return Math.min(requested, cap);
}

/**
 * Applies a decision's obligations to a request: every limit and the timeout
 * become min(requested, cap) (a requested 0 takes the cap), and the network is
 * "host" or "restricted" only if both the request and the obligation say so (a
 * "restricted" obligation without allowed hosts or caps gives "none"). Obligations
 * therefore only ever tighten a request.
 *
 * @example
 * const eff = applyObligations(
 *   { timeout_seconds: 900, network: "unspecified", limits },
 *   decision.obligations,
 * ); // eff.timeout_seconds === 300 with the default policy
 */
export function applyObligations(
  requested: RequestedSandbox,
  obligations: Obligations,
): EffectiveSandbox {
  const limits = {} as SandboxLimits;
  for (const name of LIMIT_NAMES) {
    limits[name] = tighten(requested.limits[name], obligations.limits[name]);
  }
  const network =
    requested.network === obligations.network && requested.network !== "none"
      ? obligations.network
      : "none";
  // "restricted" without a usable allowlist and caps is "none": fail closed.
  const egress = obligations.egress;
  if (
    network === "restricted" &&
    (egress === undefined ||
      egress.allow_hosts.length === 0 ||
      egress.max_bytes <= 0 ||
      egress.max_connections <= 0)
  ) {
    return {
      timeout_seconds: tighten(requested.timeout_seconds, obligations.max_timeout_seconds),
      network: "none",
      limits,
    };
  }
  return {
    timeout_seconds: tighten(requested.timeout_seconds, obligations.max_timeout_seconds),
    network,
    limits,
    ...(network === "restricted" && egress !== undefined ? { egress } : {}),
  };
}
