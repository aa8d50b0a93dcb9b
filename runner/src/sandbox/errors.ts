/** The sandbox cannot run tasks (bwrap, the native helper or user namespaces missing). */
export class SandboxUnavailableError extends Error {
  /** Stable error code, mapped by the runner to a wire error. */
  readonly code = "sandbox_unavailable" as const;

  /**
   * @param message what is missing and how to fix it
   * @param options standard error options (cause)
   */
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "SandboxUnavailableError";
  }
}

/** A {@link SandboxSpec} field is invalid (bad cwd, forbidden environment name...). */
export class SandboxSpecError extends Error {
  /** Stable error code, mapped by the runner to InvalidArgument. */
  readonly code = "invalid_spec" as const;

  /**
   * @param message which field is wrong and why
   */
  constructor(message: string) {
    super(message);
    this.name = "SandboxSpecError";
  }
}
