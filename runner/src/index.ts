export { type RunnerConfig, type RunnerConfigInput, runnerConfigSchema } from "./config.js";
export { type Runner, runnerTlsFiles, startRunner } from "./runner.js";
