/**
 * Dependency-vulnerability gate (scripts/test.sh runs it; see docs/adr/0015-release-build-and-supply-chain.md).
 *
 * Asks `npm audit --omit=dev --json` about the production dependencies of the lock file and fails
 * on every finding that security/vuln-allowlist.json does not accept (each accepted finding has a
 * reason and an expiry date; an expired or incomplete entry fails the gate too).
 *
 * When the advisory source cannot be asked (the registry refuses or cannot be reached), the gate
 * did not run: it fails, unless the allowlist holds an unexpired `unavailable` waiver, and then it
 * still prints a banner saying no vulnerability check ran and until when that is accepted. It
 * never passes silently.
 *
 *   node --import tsx scripts/build/vuln-gate.ts [--allowlist security/vuln-allowlist.json]
 */
import { execFile } from "node:child_process";
import { readFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { parseArgs } from "node:util";
import { z } from "zod";

const ROOT = resolve(import.meta.dirname, "../..");

const isoDate = z.string().regex(/^\d{4}-\d{2}-\d{2}$/, "a date as YYYY-MM-DD");

/** The allowlist file: accepted findings and the waiver for an unreachable advisory source. */
export const allowlistSchema = z.object({
  /** Accepted findings, each with why and until when. */
  findings: z
    .array(
      z.object({
        /** Advisory id: GHSA-…, CVE-…, or the npm advisory URL. */
        id: z.string().min(1),
        /** The npm package the advisory is about. */
        package: z.string().min(1),
        /** Why it is accepted (not reachable from our code, no fix yet, …). */
        reason: z.string().min(10),
        /** Last day the acceptance holds; the gate fails after it. */
        expires: isoDate,
      }),
    )
    .default([]),
  /** Accepts, until `expires`, that the advisory source cannot be asked from this machine. */
  unavailable: z.object({ reason: z.string().min(10), expires: isoDate }).optional(),
});

/** The parsed allowlist. */
export type Allowlist = z.infer<typeof allowlistSchema>;

/** One advisory affecting one installed package. */
export interface Finding {
  /** GHSA id when the advisory URL names one, else the URL or npm's source number. */
  id: string;
  package: string;
  severity: string;
  title: string;
  url: string;
}

/** What the advisory source said: findings, or why it could not be asked. */
export type AuditResult =
  | { ran: true; source: string; findings: Finding[] }
  | { ran: false; source: string; error: string };

/** The gate's verdict: pass or fail, with the lines to print. */
export interface Verdict {
  ok: boolean;
  lines: string[];
}

/**
 * Decides the gate from an audit result, the allowlist and today's date (YYYY-MM-DD). Pure: the
 * tests call it with every case.
 */
export function decide(audit: AuditResult, allowlist: Allowlist, today: string): Verdict {
  const lines: string[] = [];
  let ok = true;
  for (const entry of allowlist.findings) {
    if (entry.expires < today) {
      ok = false;
      lines.push(
        `FAIL: allowlist entry ${entry.id} (${entry.package}) expired on ${entry.expires}: fix the dependency or renew the entry with a new reason`,
      );
    }
  }
  if (!audit.ran) {
    const waiver = allowlist.unavailable;
    const banner = [
      "################################################################################",
      `# VULNERABILITY GATE DID NOT RUN: ${audit.source} could not be asked`,
      `#   ${audit.error}`,
    ];
    if (!waiver) {
      lines.push(
        ...banner,
        "# No `unavailable` waiver in the allowlist: failing.",
        "################################################################################",
      );
      return { ok: false, lines };
    }
    if (waiver.expires < today) {
      lines.push(
        ...banner,
        `# The waiver expired on ${waiver.expires}: failing. Restore access to the advisory`,
        "# source (or an offline advisory database) or renew the waiver with a reason.",
        "################################################################################",
      );
      return { ok: false, lines };
    }
    lines.push(
      ...banner,
      `# Accepted until ${waiver.expires} by the allowlist's waiver: ${waiver.reason}`,
      "# Dependencies were NOT checked for known vulnerabilities in this run.",
      "################################################################################",
    );
    return { ok, lines };
  }
  const accepted = new Map(allowlist.findings.map((e) => [`${e.package} ${e.id}`, e]));
  for (const f of audit.findings) {
    const entry = accepted.get(`${f.package} ${f.id}`);
    if (entry && entry.expires >= today) {
      lines.push(
        `accepted until ${entry.expires}: ${f.package} ${f.id} (${f.severity}) — ${entry.reason}`,
      );
    } else if (!entry) {
      ok = false;
      lines.push(`FAIL: ${f.package} ${f.id} (${f.severity}) ${f.title} ${f.url}`);
    }
  }
  lines.push(
    `${audit.source}: ${audit.findings.length} finding(s) in production dependencies; gate ${ok ? "passed" : "FAILED"}`,
  );
  return { ok, lines };
}

/** Findings from `npm audit --json` output (npm 7+ report format). */
export function findingsFromNpmAudit(report: unknown): Finding[] {
  const vulns = (report as { vulnerabilities?: Record<string, { via?: unknown[] }> })
    .vulnerabilities;
  const out = new Map<string, Finding>();
  for (const [pkg, v] of Object.entries(vulns ?? {})) {
    for (const via of v.via ?? []) {
      if (typeof via !== "object" || via === null) continue; // a transitive pointer, by name
      const a = via as {
        source?: number;
        name?: string;
        title?: string;
        url?: string;
        severity?: string;
      };
      const url = a.url ?? "";
      const id = url.match(/GHSA(-[0-9a-z]{4}){3}/)?.[0] ?? (url || String(a.source ?? "unknown"));
      const f: Finding = {
        id,
        package: a.name ?? pkg,
        severity: a.severity ?? "unknown",
        title: a.title ?? "",
        url,
      };
      out.set(`${f.package} ${f.id}`, f);
    }
  }
  return [...out.values()];
}

/** Runs `npm audit --omit=dev --json` in the repository. */
export function npmAudit(): Promise<AuditResult> {
  const source = "npm audit (registry advisories endpoint)";
  return new Promise((resolvePromise) => {
    execFile(
      "npm",
      ["audit", "--omit=dev", "--json", "--audit=true"],
      { cwd: ROOT, maxBuffer: 64 * 1024 * 1024, timeout: 120_000 },
      (_err, stdout) => {
        // npm audit exits 1 when it finds something: the report is what counts.
        let report: Record<string, unknown>;
        try {
          report = JSON.parse(stdout) as Record<string, unknown>;
        } catch {
          resolvePromise({ ran: false, source, error: `no JSON report (${stdout.slice(0, 200)})` });
          return;
        }
        if (report.error || !report.vulnerabilities) {
          const e = report.error as { summary?: string } | undefined;
          const message = typeof report.message === "string" ? report.message : e?.summary;
          resolvePromise({
            ran: false,
            source,
            error: message ?? JSON.stringify(report).slice(0, 300),
          });
          return;
        }
        resolvePromise({ ran: true, source, findings: findingsFromNpmAudit(report) });
      },
    );
  });
}

if (import.meta.filename === process.argv[1]) {
  const { values } = parseArgs({
    options: {
      allowlist: { type: "string", default: join(ROOT, "security", "vuln-allowlist.json") },
    },
  });
  const allowlist = allowlistSchema.parse(JSON.parse(readFileSync(values.allowlist, "utf8")));
  const verdict = decide(await npmAudit(), allowlist, new Date().toISOString().slice(0, 10));
  for (const line of verdict.lines) process.stderr.write(`${line}\n`);
  process.exitCode = verdict.ok ? 0 : 1;
}
