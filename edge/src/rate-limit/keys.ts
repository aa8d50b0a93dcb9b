import type { PrincipalRecord } from "../store/types.js";

/**
 * The key of a principal's rate-limit buckets and budgets: issuer, tenant and
 * subject, so `alice` of one tenant (or issuer) never spends the budget of
 * `alice` of another. JSON-encoded, so no choice of claim values makes two
 * different triples collide.
 *
 * @example
 * limiter.take(principalKey(config.auth.issuer, principal));
 */
export function principalKey(
  issuer: string,
  principal: Pick<PrincipalRecord, "sub" | "tenant">,
): string {
  return JSON.stringify([issuer, principal.tenant, principal.sub]);
}
