export {
  type ChainVerdict,
  verifyAuditChain,
  verifyAuditRows,
  verifyStoreAudit,
} from "../audit/chain.js";
export {
  checkpointPublicKeyPath,
  createCheckpointCheck,
  defaultCheckpointFile,
  defaultCheckpointKeyPath,
  loadCheckpointPublicKeys,
  parseCheckpoints,
} from "../audit/checkpoints.js";
export { createAuditExporter, streamExportSink } from "../audit/export.js";
export {
  type AuditKey,
  AuditKeyError,
  defaultAuditKeyPath,
  ensureAuditKeys,
  loadAuditKeys,
} from "../audit/keys.js";
export { type OpenedStore, openStore } from "./open.js";
export { createSqliteStore, type SqliteStore } from "./sqlite.js";
export type { AuditRecord, RawAuditRow, TaskRecord, TaskStore } from "./types.js";
