import { existsSync, lstatSync, readlinkSync } from "node:fs";
import { isAbsolute, posix } from "node:path";
import type { HostLayout, SystemEntry } from "./bwrap-argv.js";

/** Top-level system paths mirrored into the sandbox when they exist on the host. */
const SYSTEM_PATHS = ["/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"];

/**
 * /etc entries every task gets (read-only): loader cache, Debian alternatives (awk, cc...),
 * timezone, name-service switch. Each is one bind mount on the hot path: keep this short.
 */
const ETC_PATHS = ["/etc/ld.so.cache", "/etc/alternatives", "/etc/localtime", "/etc/nsswitch.conf"];

/** /etc entries added for network "host": resolver, service names, CA certificates. */
const NETWORK_ETC_PATHS = [
  "/etc/services",
  "/etc/protocols",
  "/etc/resolv.conf",
  "/etc/hosts",
  "/etc/gai.conf",
  "/etc/ssl",
  "/etc/ca-certificates",
];

/** Host paths that may never be bound into a sandbox, nor anything beneath them. */
const FORBIDDEN_PREFIXES = ["/etc", "/root", "/home", "/proc", "/sys", "/dev", "/run", "/var"];

/** Options of {@link detectHostLayout}. */
export interface DetectHostLayoutOptions {
  /** Host path of sandbox-init. */
  initPath: string;
  /** Host directory holding the stub passwd, group and hosts files. */
  etcStubDir: string;
  /** Extra host directories to bind read-only (absolute, not under /etc, /root, /home...). */
  extraReadOnly: string[];
}

/**
 * Looks at the host once: which system directories exist and whether /bin, /lib... are
 * merged-/usr symlinks, which /etc files exist.
 *
 * @throws Error if /usr is missing or an extra path is forbidden
 */
export function detectHostLayout(options: DetectHostLayoutOptions): HostLayout {
  const systemEntries: SystemEntry[] = [];
  for (const path of SYSTEM_PATHS) {
    let st: ReturnType<typeof lstatSync>;
    try {
      st = lstatSync(path);
    } catch {
      continue;
    }
    if (st.isSymbolicLink())
      systemEntries.push({ path, kind: "symlink", target: readlinkSync(path) });
    else if (st.isDirectory()) systemEntries.push({ path, kind: "dir" });
  }
  if (!systemEntries.some((e) => e.path === "/usr" && e.kind === "dir")) {
    throw new Error("/usr is not a directory on this host");
  }
  const extraReadOnly = options.extraReadOnly.map((p) => {
    const normalized = posix.normalize(p);
    if (!isAbsolute(normalized) || normalized === "/") {
      throw new Error(`extra read-only path ${JSON.stringify(p)} must be an absolute directory`);
    }
    if (FORBIDDEN_PREFIXES.some((f) => normalized === f || normalized.startsWith(`${f}/`))) {
      throw new Error(`extra read-only path ${p} may not be exposed to sandboxed tasks`);
    }
    return normalized;
  });
  return {
    systemEntries,
    etcEntries: ETC_PATHS.filter((p) => existsSync(p)),
    networkEtcEntries: NETWORK_ETC_PATHS.filter((p) => existsSync(p)),
    extraReadOnly,
    etcStubDir: options.etcStubDir,
    initPath: options.initPath,
  };
}
