/**
 * File operations confined to a task's workspace (openat2 RESOLVE_BENEATH in the native
 * helper, run as the sandbox uid). See docs/security/sandbox.md.
 *
 * @module
 */
export { isWorkspaceErrorCode, WorkspaceError, type WorkspaceErrorCode } from "./errors.js";
export {
  createWorkspaceQuota,
  formatBytes,
  imageSizeFor,
  type WorkspaceQuota,
  type WorkspaceQuotaOptions,
  type WorkspaceSize,
  type WorkspaceUsage,
} from "./quota.js";
export { createWorkspaceCleaner } from "./reset.js";
export {
  createWorkspaceFs,
  type WorkspaceEntry,
  type WorkspaceFs,
  type WorkspaceFsOptions,
} from "./workspace-fs.js";
