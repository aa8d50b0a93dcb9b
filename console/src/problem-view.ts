import type { Problem } from "@mcp-gateway/client/web";
import { h } from "./dom.js";

/**
 * A failed call, for a person: what happened and what to do, the policy's
 * reasons for a denial (as the policy wrote them), and the gateway's own
 * message. Announced to screen readers (role=alert). Never a stack trace.
 */
export function problemView(p: Problem, title?: string): HTMLElement {
  const reasons =
    p.reasons.length > 0
      ? h(
          "div",
          { class: "reasons" },
          h("p", { class: "reasons-title" }, "Why the policy denied it:"),
          h("ul", {}, ...p.reasons.map((r) => h("li", {}, r))),
        )
      : null;
  const detail =
    p.message !== "" && p.message !== p.summary && p.reasons.length === 0
      ? h("p", { class: "detail" }, "Gateway message: ", h("code", {}, p.message))
      : null;
  return h(
    "div",
    { class: `problem problem-${p.kind}`, role: "alert", "data-kind": p.kind },
    title ? h("p", { class: "problem-title" }, title) : null,
    h("p", { class: "summary" }, p.summary),
    reasons,
    detail,
  );
}
