import { parse, UsageError } from "../args.js";
import { COMMON, clientFrom } from "./client.js";

const USAGE = "workspace reset <name> [--owner sub]";

/**
 * `mcp-gateway workspace reset <name> [--owner sub]` (admins): empties a workspace and gives
 * its root back its owner and mode — the way back from a workspace a task broke (`chmod 000
 * /workspace`) or poisoned (a planted `.git`). Workspaces are per principal unless the tenant
 * shares them: `--owner` names the member whose workspace it is.
 */
export async function workspaceCommand(argv: string[]): Promise<number> {
  const [action, ...rest] = argv;
  const { values, positionals } = parse(rest, { ...COMMON, owner: { type: "string" } });
  const [name] = positionals;
  if (action !== "reset" || !name || positionals.length > 1) throw new UsageError(USAGE);
  const client = await clientFrom(values);
  await client.resetWorkspace({ workspace: name, owner: values.owner ?? "" });
  process.stdout.write(
    `workspace ${name}${values.owner ? ` of ${values.owner}` : ""} reset: empty, root restored\n`,
  );
  return 0;
}
