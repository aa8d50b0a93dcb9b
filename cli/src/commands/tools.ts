import { timestampDate } from "@bufbuild/protobuf/wkt";
import type { ToolDefinition } from "@mcp-gateway/proto/mcp";
import { parse, UsageError } from "../args.js";
import { COMMON, clientFrom } from "./client.js";

const USAGE =
  "tools list [--server s] [--pending] | tools diff <server> <tool> | tools approve <server> <tool> <digest>";

function line(t: ToolDefinition): string {
  const state = t.approved ? "approved" : "PENDING APPROVAL";
  const when = t.seenAt ? timestampDate(t.seenAt).toISOString() : "";
  return `${`${t.server}/${t.tool}`.padEnd(40)} ${state.padEnd(17)} ${t.seenDigest.slice(0, 19)}…  seen ${when}  approved by ${t.approvedBy}`;
}

/** Pretty JSON of a canonical definition, for a readable line diff. */
function pretty(json: string): string[] {
  try {
    return JSON.stringify(JSON.parse(json), null, 2).split("\n");
  } catch {
    return [json];
  }
}

/** A minimal line diff (longest common subsequence): enough for tool definitions. */
function diffLines(a: string[], b: string[]): string[] {
  const n = a.length;
  const m = b.length;
  const lcs: number[][] = Array.from({ length: n + 1 }, () => new Array<number>(m + 1).fill(0));
  for (let i = n - 1; i >= 0; i--) {
    for (let j = m - 1; j >= 0; j--) {
      const row = lcs[i] as number[];
      row[j] =
        a[i] === b[j]
          ? ((lcs[i + 1] as number[])[j + 1] ?? 0) + 1
          : Math.max((lcs[i + 1] as number[])[j] ?? 0, row[j + 1] ?? 0);
    }
  }
  const out: string[] = [];
  let i = 0;
  let j = 0;
  while (i < n || j < m) {
    if (i < n && j < m && a[i] === b[j]) {
      out.push(`  ${a[i]}`);
      i++;
      j++;
    } else if (
      j < m &&
      (i === n || ((lcs[i] as number[])[j + 1] ?? 0) >= ((lcs[i + 1] as number[])[j] ?? 0))
    ) {
      out.push(`+ ${b[j]}`);
      j++;
    } else {
      out.push(`- ${a[i]}`);
      i++;
    }
  }
  return out;
}

/**
 * `mcp-gateway tools list|diff|approve`: the pinned definitions of upstream
 * MCP tools (admins). A tool whose definition changed after approval is
 * hidden and refused until an admin approves the digest it serves now.
 */
export async function toolsCommand(argv: string[]): Promise<number> {
  const [action, ...rest] = argv;
  const { values, positionals } = parse(rest, {
    ...COMMON,
    server: { type: "string" },
    pending: { type: "boolean" },
  });
  const client = await clientFrom(values);
  if (action === "list") {
    const res = await client.listToolDefinitions({
      server: values.server ?? "",
      pendingOnly: values.pending ?? false,
    });
    if (values.json) {
      for (const t of res.tools) {
        process.stdout.write(
          `${JSON.stringify({ server: t.server, tool: t.tool, approved: t.approved, approved_digest: t.approvedDigest, seen_digest: t.seenDigest, approved_by: t.approvedBy })}\n`,
        );
      }
    } else if (res.tools.length === 0) {
      process.stdout.write("no pinned tool definitions\n");
    } else {
      for (const t of res.tools) process.stdout.write(`${line(t)}\n`);
    }
    return 0;
  }
  if (action === "diff" || action === "approve") {
    const [server, tool, digest] = positionals;
    if (!server || !tool) throw new UsageError(USAGE);
    if (action === "diff") {
      const res = await client.listToolDefinitions({ server, pendingOnly: false });
      const t = res.tools.find((x) => x.tool === tool);
      if (!t) throw new UsageError(`no pinned definition for ${server}/${tool}`);
      process.stdout.write(`${line(t)}\n`);
      if (t.approved) {
        process.stdout.write("the upstream serves the approved definition\n");
        return 0;
      }
      process.stdout.write(`--- approved ${t.approvedDigest}\n+++ served   ${t.seenDigest}\n`);
      for (const l of diffLines(pretty(t.approvedDefinitionJson), pretty(t.seenDefinitionJson))) {
        if (!l.startsWith("  ")) process.stdout.write(`${l}\n`);
      }
      process.stdout.write(
        `approve with: mcp-gateway tools approve ${server} ${tool} ${t.seenDigest}\n`,
      );
      return 0;
    }
    if (!digest)
      throw new UsageError(`${USAGE}\n(the digest is shown by tools list and tools diff)`);
    const res = await client.approveToolDefinition({ server, tool, digest });
    if (res.tool) process.stdout.write(`${line(res.tool)}\n`);
    return 0;
  }
  throw new UsageError(USAGE);
}
