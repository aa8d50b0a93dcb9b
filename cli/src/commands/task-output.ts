import { fstatSync } from "node:fs";

/** A stream the task writer writes to: process.stdout, process.stderr, or a test double. */
export interface OutputStream {
  write(data: string | Uint8Array): unknown;
}

/** Options of {@link createTaskWriter}. */
export interface TaskWriterOptions {
  /** Where the task's stdout goes. */
  stdout: OutputStream;
  /** Where the task's stderr and the CLI's own `[mcp]` notes go. */
  stderr: OutputStream;
  /**
   * Whether stdout and stderr end up in the same place (one terminal, `2>&1`), so that task
   * stdout lacking a final newline would glue to the next note. Default: {@link sameDestination}.
   */
  shared?: boolean;
  /** Whether to end an unterminated last line when the task is done (a terminal's prompt). */
  endLine?: boolean;
}

/** Writes a task's output and the CLI's notes; see {@link createTaskWriter}. */
export interface TaskWriter {
  /** Task stdout, written as it came. */
  stdout(data: Uint8Array | string): void;
  /** Task stderr, written as it came. */
  stderr(data: Uint8Array | string): void;
  /** A CLI note (`[mcp] …`), always on a line of its own. */
  note(text: string): void;
  /** The task is done: ends an unterminated line when {@link TaskWriterOptions.endLine} is set. */
  end(): void;
}

/** Whether file descriptors 1 and 2 are the same file, pipe or terminal. */
export function sameDestination(): boolean {
  try {
    const out = fstatSync(1);
    const err = fstatSync(2);
    return out.dev === err.dev && out.ino === err.ino && out.rdev === err.rdev;
  } catch {
    return false;
  }
}

const NEWLINE = 0x0a;

function endsWithNewline(data: Uint8Array | string): boolean {
  if (typeof data === "string") return data.endsWith("\n");
  return data.length > 0 && data[data.length - 1] === NEWLINE;
}

function isEmpty(data: Uint8Array | string): boolean {
  return data.length === 0;
}

/**
 * Writes a task's streamed output and the CLI's `[mcp]` notes so that a note always starts on
 * its own line: output that ended without a newline on stderr (or on stdout, when stdout and
 * stderr share a destination) gets one before the note, written to stderr. The task's own
 * bytes are never changed.
 *
 * @example
 * const out = createTaskWriter({ stdout: process.stdout, stderr: process.stderr });
 * out.stdout(chunk.data);
 * out.note(`[mcp] task timed_out`);
 */
export function createTaskWriter(options: TaskWriterOptions): TaskWriter {
  const shared = options.shared ?? sameDestination();
  /** The last thing written to stderr's destination did not end a line. */
  let open = false;
  const breakLine = () => {
    if (open) options.stderr.write("\n");
    open = false;
  };
  return {
    stdout(data) {
      if (isEmpty(data)) return;
      options.stdout.write(data);
      if (shared) open = !endsWithNewline(data);
    },
    stderr(data) {
      if (isEmpty(data)) return;
      options.stderr.write(data);
      open = !endsWithNewline(data);
    },
    note(text) {
      breakLine();
      options.stderr.write(text.endsWith("\n") ? text : `${text}\n`);
    },
    end() {
      if (options.endLine) breakLine();
    },
  };
}
