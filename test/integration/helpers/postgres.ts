import { execFile } from "node:child_process";
import { randomBytes } from "node:crypto";
import { chmodSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { promisify } from "node:util";
import { Client } from "pg";

const run = promisify(execFile);
const ROOT = resolve(import.meta.dirname, "..", "..", "..");
const SCRIPT = join(ROOT, "scripts", "start-postgres.sh");

/** How tests get PostgreSQL: `$DATABASE_URL` when set, otherwise the throwaway cluster. */
let shared: Promise<string> | undefined;

/** Runs scripts/start-postgres.sh with `args`; resolves to the last line of stdout. */
async function script(args: string[], env: Record<string, string | undefined>): Promise<string> {
  try {
    const { stdout } = await run("bash", [SCRIPT, ...args], {
      env: { ...process.env, ...env },
      maxBuffer: 16 * 1024 * 1024,
      timeout: 600_000,
    });
    return stdout.trim().split("\n").at(-1) ?? "";
  } catch (err) {
    const e = err as { stderr?: string; message: string };
    throw new Error(
      `PostgreSQL could not be started (bash scripts/start-postgres.sh ${args.join(" ")}): ${e.stderr ?? e.message}\n` +
        "These tests never skip: set DATABASE_URL to a PostgreSQL you can create databases on, or let the " +
        "script install PostgreSQL (apt-get install postgresql, as root or with sudo).",
      { cause: err },
    );
  }
}

/**
 * The DATABASE_URL tests use: `$DATABASE_URL` when set, otherwise the URL of the throwaway cluster
 * that scripts/start-postgres.sh starts (once per process; the script reuses a running cluster).
 * Rejects loudly when PostgreSQL cannot be started.
 */
export function getDatabaseUrl(): Promise<string> {
  shared ??= script(["start"], {});
  return shared;
}

/** A database (or schema) private to one test file. */
export interface TestDatabase {
  /** Connection string selecting the private database or schema. */
  url: string;
  /** Drops it (connections still open are terminated). */
  drop(): Promise<void>;
}

/**
 * Creates a fresh database named after `label` (plus random suffix) on the shared server, so test
 * files do not collide. When the role may not create databases (an external DATABASE_URL), falls
 * back to a fresh schema selected through `options=-c search_path=…` in the URL.
 */
export async function createTestDatabase(label: string): Promise<TestDatabase> {
  const base = await getDatabaseUrl();
  const name = `mcp_test_${label
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, "_")
    .slice(0, 30)}_${randomBytes(4).toString("hex")}`;
  const admin = new Client({ connectionString: base, connectionTimeoutMillis: 10_000 });
  try {
    await admin.connect();
  } catch (err) {
    const where = new URL(base);
    throw new Error(
      `cannot connect to PostgreSQL at ${where.host}${where.pathname} (from ${process.env.DATABASE_URL ? "$DATABASE_URL" : "scripts/start-postgres.sh"}): ${(err as Error).message}`,
      { cause: err },
    );
  }
  try {
    await admin.query(`CREATE DATABASE ${name}`);
    const url = new URL(base);
    url.pathname = `/${name}`;
    return {
      url: url.toString(),
      async drop() {
        const c = new Client({ connectionString: base, connectionTimeoutMillis: 10_000 });
        await c.connect();
        try {
          await c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
        } finally {
          await c.end();
        }
      },
    };
  } catch (err) {
    if ((err as { code?: string }).code !== "42501") throw err;
    await admin.query(`CREATE SCHEMA ${name}`);
    const url = new URL(base);
    url.searchParams.set("options", `-c search_path=${name}`);
    return {
      url: url.toString(),
      async drop() {
        const c = new Client({ connectionString: base, connectionTimeoutMillis: 10_000 });
        await c.connect();
        try {
          await c.query(`DROP SCHEMA IF EXISTS ${name} CASCADE`);
        } finally {
          await c.end();
        }
      },
    };
  } finally {
    await admin.end();
  }
}

/** A throwaway cluster owned by one test, which it may stop and restart. */
export interface PrivateCluster {
  /** Its DATABASE_URL (same port across restarts). */
  url: string;
  /** pg_ctl stop -m fast. */
  stop(): Promise<void>;
  /** Starts it again after stop() (same data, same port when free). */
  start(): Promise<void>;
  /** pg_ctl restart -m fast. */
  restart(): Promise<void>;
  /** Stops it and deletes its directory. */
  destroy(): Promise<void>;
}

/**
 * Starts a cluster of its own (ignoring $DATABASE_URL) in a fresh temp directory, for tests that
 * stop or restart PostgreSQL without disturbing other test files. Needs PostgreSQL binaries on
 * this machine (the script installs them when missing); rejects loudly otherwise.
 */
export async function startPrivateCluster(label: string): Promise<PrivateCluster> {
  const parent = mkdtempSync(join(tmpdir(), `mcp-pg-${label}-`));
  chmodSync(parent, 0o755); // the cluster runs as the unprivileged `postgres` user when we are root
  const dir = join(parent, "cluster");
  const env = { DATABASE_URL: undefined, MCP_PG_DIR: dir };
  const url = await script(["start"], env);
  return {
    url,
    async stop() {
      await script(["stop"], env);
    },
    async start() {
      const again = await script(["start"], env);
      if (again !== url) throw new Error(`cluster came back on a different URL (${again})`);
    },
    async restart() {
      await script(["restart"], env);
    },
    async destroy() {
      await script(["destroy"], env);
      rmSync(parent, { recursive: true, force: true });
    },
  };
}
