import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

/** Root of the installed gateway (the repository checkout). */
export const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "..", "..");

/** Default data directory: $MCP_GATEWAY_DATA_DIR or <repo>/.data. */
export function defaultDataDir(): string {
  return resolve(process.env.MCP_GATEWAY_DATA_DIR ?? join(REPO_ROOT, ".data"));
}

/** Default policy bundle built by scripts/build-policy.sh. */
export const DEFAULT_POLICY_BUNDLE = join(REPO_ROOT, "policies", "build", "bundle.tar.gz");
