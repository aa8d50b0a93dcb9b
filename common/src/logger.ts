import { type Logger, pino } from "pino";

/** Options for {@link createLogger}. */
export interface LoggerOptions {
  /** Component name put on every line ("edge", "runner", "cli"). */
  name: string;
  /** pino level: "fatal" | "error" | "warn" | "info" | "debug" | "trace" | "silent". */
  level: string;
  /** Where lines go; defaults to stdout. Tests pass a stream to read them back. */
  destination?: NodeJS.WritableStream;
}

/**
 * Paths that are redacted on every log line: credentials must never reach logs,
 * whatever object a caller logs.
 */
export const REDACT_PATHS: readonly string[] = [
  "authorization",
  "*.authorization",
  "headers.authorization",
  "req.headers.authorization",
  "*.headers.authorization",
  "token",
  "*.token",
  "password",
  "*.password",
  "secret",
  "*.secret",
  "key",
  "*.key",
  "privateKey",
  "*.privateKey",
  "env",
  "*.env",
];

/**
 * Creates the process logger: pino JSON with secrets redacted. Child loggers
 * carry the trace id (`logger.child({ traceId })`).
 *
 * @example
 * const logger = createLogger({ name: "edge", level: "info" });
 * logger.child({ traceId }).info({ taskId }, "task accepted");
 */
export function createLogger(options: LoggerOptions): Logger {
  const opts = {
    name: options.name,
    level: options.level,
    redact: { paths: [...REDACT_PATHS], censor: "[redacted]" },
    base: { pid: process.pid },
    timestamp: pino.stdTimeFunctions.isoTime,
  };
  return options.destination ? pino(opts, options.destination) : pino(opts);
}
