// The audit trail (admins, auditors): ListAuditEvents with its filters, each decision with its
// reasons, and what the browser can check of the chain: the hash links between consecutive
// records. The records' HMACs need the audit key, which stays on the edge host.
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import { describeProblem } from "@mcp-gateway/client/web";
import type { AuditEvent } from "@mcp-gateway/proto/mcp";
import type { AppContext } from "../context.js";
import { field, h, replace } from "../dom.js";
import { checkLinks } from "../format.js";
import { problemView } from "../problem-view.js";

const OPERATIONS = [
  "execute",
  "task_finished",
  "egress_connection",
  "get_task",
  "stream_task",
  "cancel_task",
  "read_file",
  "write_file",
  "delete_file",
  "list_directory",
  "list_audit",
  "list_tools",
];

function localInputValue(ms: number): string {
  const d = new Date(ms - new Date(ms).getTimezoneOffset() * 60_000);
  return d.toISOString().slice(0, 16);
}

function pretty(json: string): string {
  try {
    return JSON.stringify(JSON.parse(json), null, 2);
  } catch {
    return json;
  }
}

function row(e: AuditEvent): HTMLElement {
  const time = e.time ? new Date(Number(e.time.seconds) * 1000) : undefined;
  const reasons =
    e.reasons.length > 0
      ? h("ul", { class: "reasons-cell" }, ...e.reasons.map((r) => h("li", {}, r)))
      : "–";
  return h(
    "tr",
    { "data-seq": String(e.seq), "data-decision": e.decision },
    h("td", { class: "num" }, String(e.seq)),
    h("td", {}, time ? time.toLocaleString() : "–"),
    h("td", {}, e.principal || "–"),
    h("td", {}, h("code", {}, e.operation)),
    h("td", {}, h("span", { class: `badge badge-${e.decision}` }, e.decision)),
    h("td", {}, e.outcome),
    h("td", {}, reasons),
    h(
      "td",
      {},
      h(
        "details",
        {},
        h("summary", {}, "Details"),
        h(
          "dl",
          { class: "facts compact" },
          e.taskId
            ? [h("dt", {}, "Task"), h("dd", {}, h("a", { href: `#/tasks/${e.taskId}` }, e.taskId))]
            : null,
          e.runnerId ? [h("dt", {}, "Runner"), h("dd", {}, e.runnerId)] : null,
          h("dt", {}, "Policy revision"),
          h("dd", {}, e.policyRevision || "–"),
          h("dt", {}, "Trace id"),
          h("dd", {}, h("code", {}, e.traceId || "–")),
          h("dt", {}, "Hash"),
          h("dd", {}, h("code", { class: "hash" }, e.hash)),
          h("dt", {}, "Previous"),
          h("dd", {}, h("code", { class: "hash" }, e.prevHash)),
        ),
        h("p", { class: "json-title" }, "Parameters"),
        h("pre", { class: "json" }, pretty(e.paramsJson)),
        e.detailsJson && e.detailsJson !== "{}"
          ? [
              h("p", { class: "json-title" }, "Outcome details"),
              h("pre", { class: "json" }, pretty(e.detailsJson)),
            ]
          : null,
      ),
    ),
  );
}

/** The audit view; filters live in the route's query. */
export function auditView(ctx: AppContext, main: HTMLElement, query: URLSearchParams): void {
  const principal = h("input", {
    name: "principal",
    value: query.get("principal") ?? "",
    autocomplete: "off",
  });
  const operation = h(
    "select",
    { name: "operation" },
    h("option", { value: "" }, "any"),
    ...OPERATIONS.map((o) => h("option", { value: o }, o)),
  );
  operation.value = query.get("operation") ?? "";
  const decision = h(
    "select",
    { name: "decision" },
    h("option", { value: "" }, "any"),
    h("option", { value: "allow" }, "allow"),
    h("option", { value: "deny" }, "deny"),
    h("option", { value: "none" }, "none (outcomes)"),
  );
  decision.value = query.get("decision") ?? "";
  const sinceMs = Number(query.get("since") ?? Date.now() - 3600_000);
  const since = h("input", {
    name: "since",
    type: "datetime-local",
    value: localInputValue(sinceMs),
  });
  const form = h(
    "form",
    { class: "filters", "aria-label": "Filter the audit trail" },
    field("Principal", principal),
    field("Operation", operation),
    field("Decision", decision),
    field("Since", since),
    h("div", { class: "actions" }, h("button", { type: "submit", class: "primary" }, "Apply")),
  );
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    const q = new URLSearchParams();
    if (principal.value) q.set("principal", principal.value);
    if (operation.value) q.set("operation", operation.value);
    if (decision.value) q.set("decision", decision.value);
    const s = since.value ? new Date(since.value).getTime() : sinceMs;
    q.set("since", String(s));
    ctx.navigate(`#/audit?${q}`);
  });

  const chain = h("section", { class: "chain", "aria-label": "Chain verification" });
  const body = h("tbody", {});
  const table = h(
    "div",
    { class: "table-wrap" },
    h(
      "table",
      { class: "list audit" },
      h("caption", { class: "sr-only" }, "Audit events, oldest first"),
      h(
        "thead",
        {},
        h(
          "tr",
          {},
          ...["Seq", "Time", "Principal", "Operation", "Decision", "Outcome", "Reasons", ""].map(
            (t) => h("th", { scope: "col" }, t),
          ),
        ),
      ),
      body,
    ),
  );
  const more = h("button", { type: "button", hidden: true }, "Load more");
  const out = h("div", { class: "audit-results" }, h("p", { class: "muted" }, "Loading…"));
  const loaded: AuditEvent[] = [];
  let after = 0n;

  const renderChain = () => {
    const c = checkLinks(loaded);
    const ok = c.broken.length === 0;
    replace(
      chain,
      h("h2", {}, "Chain"),
      h(
        "p",
        { class: ok ? "chain-ok" : "chain-broken", "data-chain": ok ? "consistent" : "broken" },
        ok
          ? `Hash links consistent: ${c.consistent} consecutive pair${c.consistent === 1 ? "" : "s"} checked in the ${loaded.length} records shown${c.gaps > 0 ? ` (${c.gaps} gap${c.gaps === 1 ? "" : "s"} from filters or other tenants not comparable here)` : ""}.`
          : `Broken link: record ${c.broken.map(String).join(", ")} does not name the previous record's hash. Run mcp-gateway audit verify on the edge host.`,
      ),
      h(
        "p",
        { class: "muted" },
        "Each record is sealed with an HMAC under the audit key, which never leaves the edge host; verify the signatures there with ",
        h("code", {}, "mcp-gateway audit verify"),
        ".",
      ),
    );
  };

  const load = async () => {
    try {
      const r = await ctx.client.listAuditEvents({
        principal: principal.value,
        operation: operation.value,
        decision: decision.value,
        since: timestampFromMs(sinceMs),
        afterSeq: after,
        pageSize: 100,
      });
      if (loaded.length === 0 && r.events.length === 0) {
        replace(out, h("p", { class: "muted" }, "No audit events match these filters."));
      } else if (loaded.length === 0) {
        replace(out, table, more);
      }
      loaded.push(...r.events);
      body.append(...r.events.map(row));
      after = r.nextAfterSeq;
      more.hidden = after === 0n;
      renderChain();
      main.setAttribute("data-state", "done");
    } catch (err) {
      replace(out, problemView(describeProblem(err), "The audit trail cannot be shown"));
      main.setAttribute("data-state", "error");
    }
  };
  more.addEventListener("click", () => void load());

  replace(
    main,
    h("h1", { tabindex: "-1" }, "Audit trail"),
    h(
      "p",
      { class: "lede" },
      "Every decision and outcome, oldest first, for your tenant. Denials carry the policy's reasons.",
    ),
    form,
    chain,
    out,
  );
  void load();
}
