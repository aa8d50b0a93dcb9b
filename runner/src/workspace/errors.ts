/** Stable codes of {@link WorkspaceError}. */
export type WorkspaceErrorCode =
  | "invalid_path"
  | "not_found"
  | "too_large"
  | "not_a_directory"
  | "is_a_directory"
  | "already_exists"
  | "escape_attempt"
  | "quota_exceeded"
  | "io_error";

const CODES: readonly WorkspaceErrorCode[] = [
  "invalid_path",
  "not_found",
  "too_large",
  "not_a_directory",
  "is_a_directory",
  "already_exists",
  "escape_attempt",
  "quota_exceeded",
  "io_error",
];

/** Returns true if `code` is a {@link WorkspaceErrorCode}. */
export function isWorkspaceErrorCode(code: string): code is WorkspaceErrorCode {
  return (CODES as readonly string[]).includes(code);
}

/** A workspace file operation failed; `code` says why (the runner maps it to a wire code). */
export class WorkspaceError extends Error {
  /** Why the operation failed. */
  readonly code: WorkspaceErrorCode;

  /**
   * @param code stable error code
   * @param message human-readable detail (paths are workspace-relative)
   * @param options standard error options (cause)
   */
  constructor(code: WorkspaceErrorCode, message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "WorkspaceError";
    this.code = code;
  }
}
