export {
  type ChainVerdict,
  verifyAuditChain,
  verifyAuditRows,
  verifyStoreAudit,
} from "./audit/chain.js";
export {
  type EdgeConfig,
  type EdgeConfigInput,
  edgeConfigSchema,
  type RunnerTarget,
} from "./config.js";
export {
  CONSOLE_PATH,
  type ConsoleSignInLink,
  consoleSignInUrl,
} from "./console/routes.js";
export { type Edge, edgeTlsFiles, startEdge } from "./edge.js";
export { type OpenedStore, openStore } from "./store/open.js";
export { createSqliteStore, type SqliteStore } from "./store/sqlite.js";
export type { AuditRecord, TaskRecord, TaskStore } from "./store/types.js";
