import { UsageError } from "./args.js";

const HELP = `mcp-gateway — security gateway between AI agents and real machines

Servers:
  dev    [--config f.json] [--port p]   edge + one local runner on embedded defaults (the
                              file's edge settings, e.g. mcp.upstreams, on top of them)
  edge   [--config f.json] [--host h] [--port p] [--runner id=https://…]
  runner [--config f.json] [--host h] [--port p] [--id id] [--check]

Client (flags: --url, --token, --protocol connect|grpc|grpc-web, --json, -w workspace):
  exec [--timeout s] [--cwd d] [-e K=V] [--network none|host|restricted] [--allow-host h]… [--memory 512M] [--pids n] [-d] -- cmd args…
  status <task-id>            logs [-f] <task-id>         cancel <task-id>
  cat <path>                  put <local|-> <path> [-p]   rm [-r] <path>      ls [path]

MCP:
  mcp [--url u] [--token t]   stdio MCP server forwarding to the gateway's /mcp (for agents
                              that launch local commands); the endpoint itself is <url>/mcp
  tools list [--server s] [--pending] | tools diff <server> <tool> | tools approve <server> <tool> <digest>
                              pinned upstream tool definitions (admins): a changed one is
                              hidden and refused until approved

Admin:
  token --sub s [--roles a,b] [--tenant t] [--ttl 1h]   mint a dev token
  audit verify [--expect-head h] [--audit-key-file f] [--allow-unkeyed] | audit export [--since t] [--format jsonl]
  policy eval --input req.json | policy test
  workspace reset <name> [--owner sub]   empty a workspace, restore its root (admins)

Environment: MCP_GATEWAY_URL, MCP_GATEWAY_TOKEN, MCP_GATEWAY_DATA_DIR,
  DATABASE_URL (edge, audit), MCP_GATEWAY_AUDIT_KEY_FILE (edge, audit verify)
`;

type Command = (argv: string[]) => Promise<number>;

/** Commands that run a server. */
const SERVERS: ReadonlySet<string> = new Set(["dev", "edge", "runner"]);

/**
 * Commands load their module on first use, so `token` or `status` do not pay
 * for importing the servers (start-up time of a short CLI call).
 */
const servers = () => import("./commands/servers.js");
const client = () => import("./commands/client.js");
const admin = () => import("./commands/admin.js");
const bridge = () => import("./commands/mcp-bridge.js");
const tools = () => import("./commands/tools.js");
const workspace = () => import("./commands/workspace.js");
const COMMANDS: Readonly<Record<string, () => Promise<Command>>> = {
  dev: async () => (await servers()).devCommand,
  edge: async () => (await servers()).edgeCommand,
  runner: async () => (await servers()).runnerCommand,
  exec: async () => (await client()).execCommand,
  status: async () => (await client()).statusCommand,
  logs: async () => (await client()).logsCommand,
  cancel: async () => (await client()).cancelCommand,
  cat: async () => (await client()).catCommand,
  put: async () => (await client()).putCommand,
  rm: async () => (await client()).rmCommand,
  ls: async () => (await client()).lsCommand,
  mcp: async () => (await bridge()).mcpCommand,
  tools: async () => (await tools()).toolsCommand,
  token: async () => (await admin()).tokenCommand,
  audit: async () => (await admin()).auditCommand,
  policy: async () => (await admin()).policyCommand,
  workspace: async () => (await workspace()).workspaceCommand,
};

/**
 * The help of one command: its lines of {@link HELP} under their section's heading (the
 * whole help when the command has no line of its own).
 */
export function commandHelp(name: string): string {
  const lines = HELP.split("\n");
  // The name in a command column: at the start, or after a gap and followed by its arguments
  // ("edge   [--config …]"), not a word of a description ("edge + one local runner").
  const mentions = new RegExp(`(^ {2}| {2,})${name.replace(/[^\w-]/g, "")}(?= [[<a-z-]| {2,}|$)`);
  const out: string[] = [];
  let heading = "";
  let shown = "";
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i] ?? "";
    if (line && !line.startsWith(" ")) heading = line;
    if (!line.startsWith("  ") || line.startsWith("   ") || !mentions.test(line)) continue;
    if (heading !== shown) {
      out.push(heading);
      shown = heading;
    }
    out.push(line);
    // Its continuation lines (indented further).
    while ((lines[i + 1] ?? "").startsWith("    ")) out.push(lines[++i] ?? "");
  }
  return out.length > 0 ? `${out.join("\n")}\n` : HELP;
}

/**
 * Runs the CLI; resolves to the process exit code: 0 success, 1 error,
 * 2 usage; `exec` and `logs` exit with the task's exit code (124 timed out,
 * 125 failed, 130 cancelled).
 */
export async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (!name || name === "help" || name === "--help" || name === "-h") {
    process.stdout.write(HELP);
    return name ? 0 : 2;
  }
  const load = Object.hasOwn(COMMANDS, name) ? COMMANDS[name] : undefined;
  if (!load) {
    process.stderr.write(`unknown command "${name}"\n\n${HELP}`);
    return 2;
  }
  // `<command> --help` (before any `--`, after which flags belong to the command run).
  const flags = rest.includes("--") ? rest.slice(0, rest.indexOf("--")) : rest;
  if (name !== "mcp" && (flags.includes("--help") || flags.includes("-h"))) {
    process.stdout.write(commandHelp(name));
    return 0;
  }
  try {
    const command = await load();
    return await command(rest);
  } catch (err) {
    if (err instanceof UsageError) {
      process.stderr.write(`mcp-gateway ${name}: ${err.message}\n\n${commandHelp(name)}`);
      return 2;
    }
    // Loaded here, not at the top: `--help` and usage errors stay free of the RPC libraries.
    const { ConnectError } = await import("@connectrpc/connect");
    const { codeToString } = await import("@connectrpc/connect/protocol-connect");
    if (err instanceof ConnectError) {
      process.stderr.write(`mcp-gateway ${name}: [${codeToString(err.code)}] ${err.rawMessage}\n`);
      return 1;
    }
    process.stderr.write(
      `mcp-gateway ${name}: ${err instanceof Error ? err.message : String(err)}\n`,
    );
    return 1;
  }
}

/**
 * Runs the CLI as the process: the exit code is {@link main}'s. A command that failed exits
 * at once, so a server that could not start (its port taken) does not stay alive on what it
 * had already opened (the dev runner's port, the store).
 */
export async function runMain(argv: string[]): Promise<void> {
  // A reader that stops early (`mcp-gateway audit export | head`) closes the pipe: a client
  // command then ends as Unix tools do on SIGPIPE, exit status 141 (so a pipeline under
  // `set -o pipefail` never reads it as success), without a stack trace. Servers keep
  // Node's behaviour: their supervisor must see that they stopped.
  if (!SERVERS.has(argv[0] ?? "")) {
    process.stdout.on("error", (err: NodeJS.ErrnoException) => {
      if (err.code === "EPIPE") process.exit(141);
      throw err;
    });
  }
  const code = await main(argv);
  if (code !== 0) process.exit(code);
}
