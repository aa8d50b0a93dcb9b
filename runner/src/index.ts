export { type CheckFinding, type CheckRunnerOptions, checkRunner } from "./check.js";
export { type RunnerConfig, type RunnerConfigInput, runnerConfigSchema } from "./config.js";
export { type Runner, runnerTlsFiles, startRunner } from "./runner.js";
