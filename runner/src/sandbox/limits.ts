import { z } from "zod";
import type { SandboxLimits } from "./types.js";

const MiB = 1024 * 1024;

/** Limits used when policy does not set tighter ones. */
export const DEFAULT_SANDBOX_LIMITS: SandboxLimits = Object.freeze({
  memoryBytes: 1024 * MiB,
  maxProcesses: 64,
  maxFileSizeBytes: 256 * MiB,
  maxOpenFiles: 256,
  cpuSeconds: 60,
  maxOutputBytes: 1 * MiB,
  tmpBytes: 64 * MiB,
});

const positiveInt = z.number().int().positive().max(Number.MAX_SAFE_INTEGER);

/** Boundary schema for {@link SandboxLimits}: every limit is a positive safe integer. */
export const sandboxLimitsSchema = z.object({
  memoryBytes: positiveInt.min(16 * MiB),
  maxProcesses: positiveInt.min(2),
  maxFileSizeBytes: positiveInt,
  maxOpenFiles: positiveInt.min(8),
  cpuSeconds: positiveInt,
  maxOutputBytes: z.number().int().nonnegative().max(Number.MAX_SAFE_INTEGER),
  tmpBytes: positiveInt.min(4096),
});
