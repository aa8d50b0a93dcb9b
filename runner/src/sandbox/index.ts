/**
 * The runner's kernel sandbox: bubblewrap + libseccomp filters + rlimits, wall-clock
 * deadline and capped output. See docs/security/sandbox.md.
 *
 * @module
 */
export {
  type BwrapArgvInput,
  buildBwrapArgv,
  egressProxyEnv,
  type HostLayout,
  SANDBOX_EGRESS_PORT,
  SANDBOX_INIT,
  SANDBOX_INNER_ID,
  SANDBOX_WORKSPACE,
  type SystemEntry,
  sandboxCwd,
} from "./bwrap-argv.js";
export { BASE_SANDBOX_ENV, buildSandboxEnv } from "./env.js";
export { SandboxSpecError, SandboxUnavailableError } from "./errors.js";
export { detectHostLayout } from "./host-layout.js";
export {
  DEFAULT_EXEC_POLICY,
  LANDLOCK_NET_ABI,
  landlockInitArgs,
  parseRefusal,
  REPORT_FD,
  refusalMessage,
} from "./landlock.js";
export { DEFAULT_SANDBOX_LIMITS, sandboxLimitsSchema } from "./limits.js";
export {
  createSandbox,
  DEFAULT_ETC_STUB_DIR,
  DEFAULT_HELPER_PATH,
  DEFAULT_INIT_PATH,
  type SandboxOptions,
} from "./sandbox.js";
export type {
  ExecRefusal,
  OutputStream,
  Sandbox,
  SandboxEgress,
  SandboxExecPolicy,
  SandboxLimits,
  SandboxProcess,
  SandboxReadiness,
  SandboxResult,
  SandboxSpec,
  SpawnHooks,
} from "./types.js";
