/**
 * Policy evaluation shared by edge and runner: the input document, the
 * decision shape, the in-process OPA wasm engine with hot reload, obligation
 * helpers and CLI support.
 */
export { BundleError, type PolicyBundle, parseBundle, readBundle } from "./bundle.js";
export {
  DENY_OBLIGATIONS,
  type Decision,
  DecisionShapeError,
  denyDecision,
  type EgressObligation,
  type ExecObligation,
  LIMIT_NAMES,
  type Obligations,
  parseDecision,
  type WorkspaceObligation,
  ZERO_LIMITS,
} from "./decision.js";
export {
  createPolicyEngine,
  DEFAULT_ENTRYPOINT,
  type PolicyEngine,
  type PolicyEngineOptions,
  type PolicyEngineStats,
  type ReloadResult,
} from "./engine.js";
export {
  POLICY_OPERATIONS,
  type PolicyCommand,
  type PolicyFile,
  type PolicyInput,
  type PolicyMcpServer,
  type PolicyOperation,
  type PolicyPrincipal,
  type PolicyTask,
  type RequestedNetwork,
  type SandboxLimits,
} from "./input.js";
export {
  applyObligations,
  type EffectiveSandbox,
  type RequestedSandbox,
} from "./obligations.js";
export { type ReadTarOptions, readTar, readTarGz, TarError } from "./tar.js";
export {
  type BuildPolicyBundleOptions,
  type BuildRegoBundleOptions,
  buildPolicyBundle,
  buildRegoBundle,
  bundleRevision,
  DEFAULT_BUNDLE_PATH,
  evalPolicyFile,
  findOpa,
  type PolicyTestResult,
  REPO_ROOT,
  runPolicyTests,
} from "./tools.js";
