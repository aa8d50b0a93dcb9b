/**
 * Every metric named by a Grafana dashboard query or a Prometheus alert rule is one the code really
 * exports, with labels it really has.
 *
 * The list of exported metrics comes from the code itself: the edge's metrics are registered with
 * `createEdgeMetrics()` on a registry made by `createMetricsRegistry()` (the same calls
 * edge/src/edge.ts makes, including prom-client's default Node metrics), and the runner's one
 * extra metric is listed here and checked to be registered in runner/src/runner.ts.
 *
 *   node --import tsx --test test/infra/dashboards.test.ts
 */
import assert from "node:assert/strict";
import { readdirSync, readFileSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";
import { createMetricsRegistry } from "@mcp-gateway/common/metrics";
import { createEdgeMetrics } from "../../edge/src/metrics.js";

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "../..");
const DASHBOARD_DIR = join(ROOT, "infra/grafana/dashboards");
const RULES_DIR = join(ROOT, "infra/prometheus/rules");
const RUNNER_SOURCE = join(ROOT, "runner/src/runner.ts");

/** Metrics the runner registers besides the default Node metrics (see runner/src/runner.ts). */
const RUNNER_METRICS: Record<string, { type: string; labels: string[] }> = {
  mcp_runner_tasks_running: { type: "gauge", labels: [] },
  mcp_runner_retained_event_bytes: { type: "gauge", labels: [] },
  mcp_sandbox_spawn_duration_seconds: { type: "histogram", labels: [] },
  mcp_sandbox_starts_total: { type: "counter", labels: ["start"] },
};

/** Series Prometheus itself writes for every scrape target. */
const PROMETHEUS_SERIES: Record<string, { type: string; labels: string[] }> = {
  up: { type: "gauge", labels: [] },
};

/** Labels every scraped series carries: the registry default label and the scrape target's. */
const COMMON_LABELS = ["tier", "job", "instance", "environment"];

/** The dashboards' datasource variable (Grafana syntax, not a JavaScript template). */
// biome-ignore lint/suspicious/noTemplateCurlyInString: Grafana's variable syntax
const DS_VARIABLE = "${DS_PROMETHEUS}";

const PROMQL_KEYWORDS = new Set([
  "and",
  "or",
  "unless",
  "by",
  "without",
  "on",
  "ignoring",
  "group_left",
  "group_right",
  "bool",
  "offset",
  "inf",
  "nan",
]);

/** One exported metric: its type and every label it can carry. */
interface KnownMetric {
  type: string;
  labels: Set<string>;
}

/** A metric reference found in a query. */
interface MetricRef {
  /** The name as written (may end in _bucket/_sum/_count). */
  name: string;
  /** Label names used in its `{…}` matchers. */
  matcherLabels: string[];
}

/** What one PromQL expression names. */
interface ParsedQuery {
  metrics: MetricRef[];
  /** Label names in by/without/on/ignoring/group_left/group_right clauses. */
  groupingLabels: string[];
}

/** One query to check, with where it came from for messages. */
interface SourcedQuery {
  where: string;
  expr: string;
  /** For Grafana `label_values(expr, label)`: the label asked for. */
  valuesOf?: string;
}

async function exportedMetrics(): Promise<Map<string, KnownMetric>> {
  const registry = createMetricsRegistry("edge");
  createEdgeMetrics(registry);
  const known = new Map<string, KnownMetric>();
  for (const m of await registry.getMetricsAsJSON()) {
    const single = registry.getSingleMetric(m.name) as unknown as
      | { labelNames?: string[] }
      | undefined;
    known.set(m.name, { type: String(m.type), labels: new Set(single?.labelNames ?? []) });
  }
  for (const [name, m] of Object.entries({ ...RUNNER_METRICS, ...PROMETHEUS_SERIES })) {
    known.set(name, { type: m.type, labels: new Set(m.labels) });
  }
  return known;
}

/**
 * Extracts metric names and label names from a PromQL expression, with Grafana's `$variables`
 * allowed anywhere a duration or a string may stand.
 */
function parsePromQL(expr: string): ParsedQuery {
  let s = expr
    .replace(/#[^\n]*/g, " ") // comments
    .replace(/"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`/g, '""'); // string literals
  const metrics: MetricRef[] = [];
  const groupingLabels: string[] = [];
  // metric{matchers}: remember the label names, then drop the braces.
  s = s.replace(
    /([a-zA-Z_:][a-zA-Z0-9_:]*)?\s*\{([^}]*)\}/g,
    (_m, name: string | undefined, body: string) => {
      const labels = [...body.matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=~|!~|!=|=)/g)].map(
        (x) => x[1] ?? "",
      );
      if (name === undefined) throw new Error(`selector without a metric name in: ${expr}`);
      return ` ${name}«${labels.join(",")}» `;
    },
  );
  s = s.replace(
    /\b(by|without|on|ignoring|group_left|group_right)\s*\(([^)]*)\)/g,
    (_m, _kw, body: string) => {
      for (const l of body.split(",")) if (l.trim()) groupingLabels.push(l.trim());
      return " ";
    },
  );
  s = s
    .replace(/\[[^\]]*\]/g, " ")
    .replace(/\boffset\s+-?[\w$]+/g, " ")
    .replace(/\$\{?\w+\}?/g, " ");
  for (const m of s.matchAll(/(?<![\w.:$])([a-zA-Z_:][a-zA-Z0-9_:]*)(?:«([^»]*)»)?(\s*\()?/g)) {
    const [, name = "", labels, call] = m;
    if (call !== undefined || PROMQL_KEYWORDS.has(name.toLowerCase())) continue;
    metrics.push({ name, matcherLabels: labels ? labels.split(",").filter(Boolean) : [] });
  }
  return { metrics, groupingLabels };
}

/** The exported metric a referenced series belongs to (histogram series map to their base). */
function resolveMetric(
  name: string,
  known: Map<string, KnownMetric>,
): { base: string; bucket: boolean } | null {
  if (known.has(name)) return { base: name, bucket: false };
  const m = /^(.*)_(bucket|sum|count)$/.exec(name);
  const base = m?.[1];
  if (base && known.get(base)?.type === "histogram") return { base, bucket: m?.[2] === "bucket" };
  return null;
}

/** Problems with one query: unknown metrics, unknown labels, or no metric at all. */
function checkQuery(q: SourcedQuery, known: Map<string, KnownMetric>): string[] {
  const problems: string[] = [];
  const parsed = parsePromQL(q.expr);
  if (parsed.metrics.length === 0) problems.push(`${q.where}: names no metric: ${q.expr}`);
  const usable = new Set([...COMMON_LABELS]);
  for (const ref of parsed.metrics) {
    const hit = resolveMetric(ref.name, known);
    if (!hit) {
      problems.push(`${q.where}: ${ref.name} is not exported by the code`);
      continue;
    }
    const labels = new Set([...COMMON_LABELS, ...(known.get(hit.base)?.labels ?? [])]);
    if (hit.bucket) labels.add("le");
    for (const l of labels) usable.add(l);
    for (const l of ref.matcherLabels) {
      if (!labels.has(l)) problems.push(`${q.where}: ${ref.name} has no label "${l}"`);
    }
  }
  for (const l of [...parsed.groupingLabels, ...(q.valuesOf ? [q.valuesOf] : [])]) {
    if (!usable.has(l))
      problems.push(`${q.where}: label "${l}" is on none of the metrics in: ${q.expr}`);
  }
  return problems;
}

/** Every query of a Grafana dashboard: panel targets (rows included) and query variables. */
function dashboardQueries(file: string): SourcedQuery[] {
  const dashboard = JSON.parse(readFileSync(join(ROOT, file), "utf8")) as {
    panels?: unknown[];
    templating?: { list?: Array<{ name?: string; type?: string; query?: unknown }> };
  };
  const out: SourcedQuery[] = [];
  const visit = (panels: unknown[] | undefined): void => {
    for (const raw of panels ?? []) {
      const p = raw as {
        title?: string;
        panels?: unknown[];
        targets?: Array<{ expr?: unknown; refId?: string }>;
      };
      for (const t of p.targets ?? []) {
        assert.equal(
          typeof t.expr,
          "string",
          `${file}: panel "${p.title}" target ${t.refId} has no expr`,
        );
        out.push({ where: `${file} panel "${p.title}" ${t.refId}`, expr: String(t.expr) });
      }
      visit(p.panels);
    }
  };
  visit(dashboard.panels);
  for (const v of dashboard.templating?.list ?? []) {
    if (v.type !== "query") continue;
    const q =
      typeof v.query === "string" ? v.query : (v.query as { query?: string } | undefined)?.query;
    assert.ok(q, `${file}: variable ${v.name} has no query`);
    const where = `${file} variable ${v.name}`;
    const lv = /^\s*label_values\((.*),\s*([a-zA-Z_]\w*)\s*\)\s*$/s.exec(q);
    const qr = /^\s*query_result\((.*)\)\s*$/s.exec(q);
    if (lv?.[1] && lv[2]) out.push({ where, expr: lv[1], valuesOf: lv[2] });
    else if (qr?.[1]) out.push({ where, expr: qr[1] });
    else
      assert.fail(
        `${where}: unsupported variable query ${q} (use label_values(metric, label) or query_result(expr))`,
      );
  }
  return out;
}

/**
 * The `alert:` names and `expr:` values of a Prometheus rule file. The files are YAML; this reads
 * the subset they use (plain or quoted one-line values, and `|`/`>` block scalars), and the test
 * cross-checks the counts so a construct it does not understand fails instead of being skipped.
 */
function ruleFileQueries(file: string): { alerts: string[]; exprs: SourcedQuery[] } {
  const lines = readFileSync(join(ROOT, file), "utf8").split("\n");
  const alerts: string[] = [];
  const exprs: SourcedQuery[] = [];
  const unquote = (v: string): string => v.trim().replace(/^(["'])(.*)\1$/s, "$2");
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i] ?? "";
    const alert = /^\s*-?\s*(?:alert|record):\s*(.+)$/.exec(line);
    if (alert?.[1]) alerts.push(unquote(alert[1]));
    const m = /^(\s*)-?\s*expr:\s*(.*)$/.exec(line);
    if (!m) continue;
    const value = (m[2] ?? "").trim();
    let expr = value;
    if (/^[|>][-+]?$/.test(value)) {
      const indent = (m[1] ?? "").length;
      const body: string[] = [];
      while (i + 1 < lines.length) {
        const next = lines[i + 1] ?? "";
        if (next.trim() !== "" && next.length - next.trimStart().length <= indent) break;
        body.push(next);
        i++;
      }
      expr = body.join("\n");
    } else {
      expr = unquote(value);
    }
    exprs.push({ where: `${file} rule ${alerts.at(-1) ?? "?"}`, expr });
  }
  return { alerts, exprs };
}

/** Every non-test .ts file under a directory, recursively. */
function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const path = join(dir, e.name);
    if (e.isDirectory()) return sourceFiles(path);
    return e.name.endsWith(".ts") && !e.name.endsWith(".test.ts") ? [path] : [];
  });
}

/** Files in a directory, as paths relative to the repository root (for readable messages). */
const filesIn = (dir: string, pattern: RegExp): string[] =>
  readdirSync(dir)
    .filter((f) => pattern.test(f))
    .sort()
    .map((f) => relative(ROOT, join(dir, f)));
const jsonFiles = (dir: string) => filesIn(dir, /\.json$/);
const yamlFiles = (dir: string) => filesIn(dir, /\.ya?ml$/);

test("the PromQL reader finds metrics, histogram series, matcher and grouping labels", () => {
  const parsed = parsePromQL(
    'histogram_quantile(0.99, sum by (le, operation) (rate(mcp_task_latency_ms_bucket{outcome!="timed_out",instance=~"$instance"}[$__rate_interval]))) > 5e3 and on() max(mcp_runner_up) == 1 or sum(rate(x_total[1h] offset 1h)) / ignoring(code) y',
  );
  assert.deepEqual(
    parsed.metrics.map((m) => m.name),
    ["mcp_task_latency_ms_bucket", "mcp_runner_up", "x_total", "y"],
  );
  assert.deepEqual(parsed.metrics[0]?.matcherLabels, ["outcome", "instance"]);
  assert.deepEqual(parsed.groupingLabels, ["le", "operation", "code"]);
});

test("the checker rejects a metric the code does not export, a wrong label and a wrong suffix", async () => {
  const known = await exportedMetrics();
  const bad = checkQuery(
    { where: "probe", expr: 'sum by (methd) (rate(mcp_api_request_total{code="OK"}[5m]))' },
    known,
  );
  assert.ok(
    bad.some((p) => p.includes("mcp_api_request_total is not exported")),
    bad.join("\n"),
  );
  assert.ok(
    bad.some((p) => p.includes('label "methd"')),
    bad.join("\n"),
  );
  const wrongLabel = checkQuery(
    { where: "probe", expr: 'rate(mcp_policy_decisions_total{decision="deny"}[5m])' },
    known,
  );
  assert.deepEqual(wrongLabel, ['probe: mcp_policy_decisions_total has no label "decision"']);
  // _bucket exists only for histograms; a counter has no _count series.
  assert.equal(
    checkQuery({ where: "probe", expr: "mcp_api_requests_total_count" }, known).length,
    1,
  );
  assert.deepEqual(
    checkQuery({ where: "probe", expr: "sum(rate(mcp_task_latency_ms_count[5m]))" }, known),
    [],
  );
});

test("the runner metrics listed here are the ones runner/src registers", () => {
  const source = readFileSync(RUNNER_SOURCE, "utf8");
  assert.match(
    source,
    /createMetricsRegistry\("runner"\)/,
    "the runner must expose the default Node metrics",
  );
  for (const name of Object.keys(RUNNER_METRICS)) {
    assert.ok(
      source.includes(`name: "${name}"`),
      `runner/src/runner.ts no longer registers ${name}`,
    );
  }
  // A metric added to the runner must be listed above (with its type and labels) to be usable.
  const registered = sourceFiles(join(ROOT, "runner/src")).flatMap((file) => [
    ...readFileSync(file, "utf8").matchAll(
      /new (?:Gauge|Counter|Histogram|Summary)\(\{\s*name:\s*"([^"]+)"/g,
    ),
  ]);
  const names = registered.map((m) => m[1] ?? "").sort();
  assert.deepEqual(
    names,
    Object.keys(RUNNER_METRICS).sort(),
    "update RUNNER_METRICS in test/infra/dashboards.test.ts",
  );
});

test("every mcp_* metric the code exports is shown on a dashboard", async () => {
  const known = await exportedMetrics();
  const shown = new Set(
    jsonFiles(DASHBOARD_DIR)
      .flatMap(dashboardQueries)
      .flatMap((q) => parsePromQL(q.expr).metrics)
      .map((m) => resolveMetric(m.name, known)?.base),
  );
  const missing = [...known.keys()].filter((name) => name.startsWith("mcp_") && !shown.has(name));
  assert.deepEqual(
    missing,
    [],
    "add a panel to infra/grafana/dashboards for each of these metrics",
  );
});

test("the code exports the metrics the dashboards and rules are built on", async () => {
  const known = await exportedMetrics();
  for (const name of [
    "mcp_api_requests_total",
    "mcp_task_latency_ms",
    "process_cpu_seconds_total",
    "nodejs_eventloop_lag_p99_seconds",
  ]) {
    assert.ok(known.has(name), `${name} is missing from the edge registry`);
  }
  assert.equal(known.get("mcp_task_latency_ms")?.type, "histogram");
});

test("every Grafana dashboard is valid and queries only exported metrics", async () => {
  const known = await exportedMetrics();
  const files = jsonFiles(DASHBOARD_DIR);
  assert.ok(
    files.length >= 2,
    `expected the overview and performance dashboards in ${DASHBOARD_DIR}`,
  );
  const problems: string[] = [];
  const uids = new Set<string>();
  for (const file of files) {
    const d = JSON.parse(readFileSync(join(ROOT, file), "utf8")) as {
      uid?: string;
      title?: string;
      schemaVersion?: number;
      panels?: unknown[];
    };
    assert.ok(d.uid && d.title, `${file}: a dashboard needs a uid and a title`);
    assert.ok(!uids.has(d.uid), `${file}: duplicate dashboard uid ${d.uid}`);
    uids.add(d.uid);
    assert.ok(
      (d.schemaVersion ?? 0) >= 36,
      `${file}: schemaVersion ${d.schemaVersion} is older than Grafana 9`,
    );
    const queries = dashboardQueries(file);
    assert.ok(queries.length >= 10, `${file}: only ${queries.length} queries found`);
    for (const q of queries) problems.push(...checkQuery(q, known));
    for (const raw of d.panels ?? []) {
      const p = raw as {
        type?: string;
        title?: string;
        datasource?: { type?: string; uid?: string };
      };
      if (p.type === "row") continue;
      assert.equal(
        p.datasource?.type,
        "prometheus",
        `${file}: panel "${p.title}" is not on the Prometheus datasource`,
      );
      assert.ok(
        p.datasource?.uid === DS_VARIABLE || p.datasource?.uid === "prometheus",
        `${file}: panel "${p.title}" datasource uid ${p.datasource?.uid}`,
      );
    }
  }
  assert.deepEqual(problems, []);
});

test("the dashboards cover the panels operators need", () => {
  const exprs = jsonFiles(DASHBOARD_DIR)
    .flatMap(dashboardQueries)
    .map((q) => q.expr)
    .join("\n");
  for (const needle of [
    "sum by (method) (rate(mcp_api_requests_total",
    "sum by (protocol) (rate(mcp_api_requests_total",
    "sum by (code) (rate(mcp_api_requests_total",
    "histogram_quantile(0.99, sum by (le) (rate(mcp_task_latency_ms_bucket",
    "histogram_quantile(0.95, sum by (le) (rate(mcp_task_latency_ms_bucket",
    "histogram_quantile(0.50, sum by (le) (rate(mcp_task_latency_ms_bucket",
    "mcp_policy_decisions_total",
    "mcp_auth_failures_total",
    "mcp_rate_limited_total",
    "mcp_runner_up",
    "mcp_tasks_in_flight",
    "histogram_quantile(0.99, sum by (le) (rate(mcp_policy_eval_duration_seconds_bucket",
    "histogram_quantile(0.99, sum by (le) (rate(mcp_audit_write_duration_seconds_bucket",
    "process_cpu_",
    "process_resident_memory_bytes",
    "nodejs_eventloop_lag_p99_seconds",
  ]) {
    assert.ok(exprs.includes(needle), `no dashboard query contains ${needle}`);
  }
});

test("every alert rule queries only exported metrics", async () => {
  const known = await exportedMetrics();
  const files = yamlFiles(RULES_DIR);
  assert.ok(files.length >= 1, `no rule files in ${RULES_DIR}`);
  const problems: string[] = [];
  const alerts: string[] = [];
  for (const file of files) {
    const parsed = ruleFileQueries(file);
    assert.equal(
      parsed.exprs.length,
      parsed.alerts.length,
      `${file}: ${parsed.alerts.length} rules but ${parsed.exprs.length} exprs read`,
    );
    alerts.push(...parsed.alerts);
    for (const q of parsed.exprs) problems.push(...checkQuery(q, known));
  }
  for (const required of [
    "MCPHighErrorRate",
    "MCPLatencyP99",
    "MCPThroughputAPI",
    "MCPHighPolicyViolationRate",
    "MCPAvailabilityProd",
  ]) {
    assert.ok(alerts.includes(required), `alert ${required} is missing`);
  }
  assert.deepEqual(problems, []);
});

test("every alert links a runbook section that exists", () => {
  const runbooks = readFileSync(join(ROOT, "docs/operations/runbooks.md"), "utf8");
  // GitHub's anchors: lower-cased heading text, punctuation dropped, spaces to dashes.
  const anchors = new Set(
    [...runbooks.matchAll(/^#{1,6}\s+(.+)$/gm)].map((m) =>
      (m[1] ?? "")
        .trim()
        .toLowerCase()
        .replace(/[^\w\- ]/g, "")
        .replace(/ /g, "-"),
    ),
  );
  for (const file of yamlFiles(RULES_DIR)) {
    const text = readFileSync(join(ROOT, file), "utf8");
    const alerts = ruleFileQueries(file).alerts;
    const urls = [...text.matchAll(/runbook_url:\s*["']?([^"'\n]+)/g)].map((m) => m[1] ?? "");
    assert.equal(urls.length, alerts.length, `${file}: every alert needs a runbook_url`);
    for (const url of urls) {
      const [path, anchor] = url.split("#");
      assert.equal(path, "docs/operations/runbooks.md", `${file}: runbook_url ${url}`);
      assert.ok(
        anchor && anchors.has(anchor),
        `${file}: runbook anchor #${anchor} has no heading in docs/operations/runbooks.md`,
      );
    }
  }
});
