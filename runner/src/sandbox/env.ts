import { SandboxSpecError } from "./errors.js";

/** The environment every sandboxed process starts from (spec.env is merged over it). */
export const BASE_SANDBOX_ENV: Readonly<Record<string, string>> = Object.freeze({
  PATH: "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
  HOME: "/tmp",
  TMPDIR: "/tmp",
  LANG: "C.UTF-8",
  TERM: "dumb",
  USER: "sandbox",
  LOGNAME: "sandbox",
  SHELL: "/bin/sh",
});

const NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

/**
 * Names that change how the dynamic loader, libc, a shell, git or an interpreter starts a
 * program: with them a caller could run arbitrary code inside a command that policy allowed
 * by name. The policy's environment allowlist refuses them (and everything unknown) first;
 * this list is the runner's own second line.
 */
const FORBIDDEN = [
  /^LD_/,
  /^GCONV_PATH$/,
  /^GLIBC_TUNABLES$/,
  /^MALLOC_/,
  /^BASH_ENV$/,
  /^ENV$/,
  /^SHELLOPTS$/,
  /^BASHOPTS$/,
  /^PS4$/,
  /^BASH_FUNC_/,
  // PATH is fixed here: a caller's PATH would pick "cat" from the workspace.
  /^PATH$/,
  // git reads configuration (core.fsmonitor, core.pager … run commands) and hooks from these.
  /^GIT_/,
  // Interpreter start-up: code run before the program policy allowed by name.
  /^PYTHON(STARTUP|PATH|HOME|INSPECT|USERBASE)$/,
  /^PERL5(OPT|LIB)$/,
  /^PERLLIB$/,
  /^RUBY(OPT|LIB)$/,
  /^NODE_(OPTIONS|PATH)$/,
  /^(JAVA_TOOL_OPTIONS|_JAVA_OPTIONS|JDK_JAVA_OPTIONS)$/,
  /^LESS(OPEN|CLOSE)$/,
];

/**
 * Builds the sandbox environment: {@link BASE_SANDBOX_ENV} with `extra` merged over it.
 * Host variables never appear: bwrap starts from --clearenv.
 *
 * @throws SandboxSpecError for invalid or forbidden names and values containing NUL
 */
export function buildSandboxEnv(extra: Record<string, string>): Record<string, string> {
  const env: Record<string, string> = { ...BASE_SANDBOX_ENV };
  for (const [name, value] of Object.entries(extra)) {
    if (!NAME.test(name)) {
      throw new SandboxSpecError(`environment variable name ${JSON.stringify(name)} is invalid`);
    }
    if (FORBIDDEN.some((re) => re.test(name))) {
      throw new SandboxSpecError(
        `environment variable ${name} is not allowed: it changes how programs are loaded`,
      );
    }
    if (typeof value !== "string" || value.includes("\0")) {
      throw new SandboxSpecError(`environment variable ${name} has an invalid value`);
    }
    env[name] = value;
  }
  return env;
}
