import { GatewayError } from "@mcp-gateway/common/errors";

/**
 * Bounds on request shapes; anything larger is refused with InvalidArgument
 * before policy, audit or store see it. The argument and environment bounds
 * are the shipped policy's own (`policies/data/commands.json`, counted in
 * characters as Rego's `count` does; a test keeps them equal), so nothing the
 * policy would refuse anyway is decided, audited and stored at full size.
 */
export const LIMITS = {
  commandLength: 4096,
  /** gateway.arguments.max_count */
  args: 256,
  /** gateway.arguments.max_arg_bytes (characters of one argument) */
  argChars: 64 * 1024,
  /** gateway.arguments.max_total_bytes (characters of the command line: command, args, separators) */
  argvChars: 256 * 1024,
  /** gateway.environment.max_vars */
  envEntries: 64,
  /** gateway.environment.max_value_bytes (characters of one value) */
  envValueChars: 4096,
  envBytes: 256 * 1024,
  metadataEntries: 64,
  metadataKey: 128,
  metadataValue: 1024,
  pathLength: 4096,
} as const;

const WORKSPACE = /^[A-Za-z0-9._-]{1,64}$/;
const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]{0,127}$/;
const TASK_ID = /^task-[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

function invalid(message: string): never {
  throw new GatewayError("invalid_argument", message);
}

/** A workspace name ("" means "default"). */
export function workspaceName(raw: string): string {
  const name = raw === "" ? "default" : raw;
  if (!WORKSPACE.test(name) || name === "." || name === "..") {
    invalid(
      `workspace "${name.slice(0, 80)}" is invalid: use 1-64 letters, digits, '.', '_' or '-'`,
    );
  }
  return name;
}

/** A task id of the form task-<uuid>. */
export function taskId(raw: string): string {
  if (!TASK_ID.test(raw)) invalid(`task_id "${raw.slice(0, 80)}" is invalid: expected task-<uuid>`);
  return raw;
}

/** A path inside a workspace: relative, no NUL, bounded. Confinement itself is the runner's job. */
export function workspacePath(raw: string, field: string, allowEmpty: boolean): string {
  if (raw === "" && !allowEmpty) invalid(`${field} is required`);
  if (raw.length > LIMITS.pathLength)
    invalid(`${field} is longer than ${LIMITS.pathLength} characters`);
  if (raw.includes("\0")) invalid(`${field} contains a NUL byte`);
  if (raw.startsWith("/")) invalid(`${field} must be relative to the workspace, not absolute`);
  if (raw.split("/").includes("..")) invalid(`${field} must not contain '..'`);
  return raw;
}

/** Command, arguments and environment of ExecuteCommand. */
export function commandLine(command: string, args: string[], env: Record<string, string>): void {
  if (command.trim() === "") invalid("command is required");
  if (command.length > LIMITS.commandLength)
    invalid(`command is longer than ${LIMITS.commandLength} characters`);
  if (command.includes("\0")) invalid("command contains a NUL byte");
  if (args.length > LIMITS.args) invalid(`more than ${LIMITS.args} args`);
  let chars = codePoints(command, LIMITS.commandLength) + args.length;
  for (const [i, a] of args.entries()) {
    if (a.includes("\0")) invalid("an argument contains a NUL byte");
    const n = codePoints(a, LIMITS.argChars);
    if (n > LIMITS.argChars) invalid(`argument ${i} is longer than ${LIMITS.argChars} characters`);
    chars += n;
  }
  if (chars > LIMITS.argvChars)
    invalid(`the command line is longer than ${LIMITS.argvChars} characters`);
  const entries = Object.entries(env);
  if (entries.length > LIMITS.envEntries) invalid(`more than ${LIMITS.envEntries} env entries`);
  let envBytes = 0;
  for (const [k, v] of entries) {
    if (!ENV_NAME.test(k)) invalid(`env name "${k.slice(0, 80)}" is invalid`);
    if (v.includes("\0")) invalid(`env ${k} contains a NUL byte`);
    if (codePoints(v, LIMITS.envValueChars) > LIMITS.envValueChars)
      invalid(`env ${k} is longer than ${LIMITS.envValueChars} characters`);
    envBytes += k.length + Buffer.byteLength(v);
  }
  if (envBytes > LIMITS.envBytes) invalid(`env exceeds ${LIMITS.envBytes} bytes`);
}

/**
 * Unicode code points of `s` (what Rego's `count` counts), exactly when it may
 * exceed `limit`; otherwise the UTF-16 length, which is never smaller.
 */
function codePoints(s: string, limit: number): number {
  if (s.length <= limit) return s.length;
  let n = 0;
  for (const _ of s) n++;
  return n;
}

/** Client labels. */
export function metadata(meta: Record<string, string>): Record<string, string> {
  const entries = Object.entries(meta);
  if (entries.length > LIMITS.metadataEntries)
    invalid(`more than ${LIMITS.metadataEntries} metadata entries`);
  for (const [k, v] of entries) {
    if (k.length === 0 || k.length > LIMITS.metadataKey)
      invalid(`metadata key "${k.slice(0, 80)}" is empty or too long`);
    if (v.length > LIMITS.metadataValue)
      invalid(`metadata ${k} is longer than ${LIMITS.metadataValue} characters`);
  }
  return { ...meta };
}
