import { access, constants, readFile } from "node:fs/promises";

/** What the host offers for a per-task cgroup limit layer. */
export interface CgroupProbe {
  /** True when a delegated, writable cgroup v2 with pids and memory controllers exists. */
  delegatedV2: boolean;
  /** Human description (which hierarchy, why it is or is not usable). */
  detail: string;
}

/**
 * Detects whether this process sits in a writable cgroup v2 with the pids and memory
 * controllers enabled (pure v2 host with delegation). Hybrid v1/v2 hosts (v2 mounted at
 * /sys/fs/cgroup/unified without controllers) and v1-only hosts report false.
 */
export async function probeCgroup(): Promise<CgroupProbe> {
  let self = "";
  try {
    self = await readFile("/proc/self/cgroup", "utf8");
  } catch {
    return { delegatedV2: false, detail: "/proc/self/cgroup is unreadable" };
  }
  const v2Line = self.split("\n").find((l) => l.startsWith("0::"));
  const path = v2Line?.slice(3) ?? "";
  for (const mount of ["/sys/fs/cgroup", "/sys/fs/cgroup/unified"]) {
    let controllers: string;
    try {
      controllers = await readFile(`${mount}${path}/cgroup.controllers`, "utf8");
    } catch {
      continue;
    }
    const have = controllers.trim().split(/\s+/).filter(Boolean);
    const missing = ["pids", "memory"].filter((c) => !have.includes(c));
    if (missing.length > 0) {
      return {
        delegatedV2: false,
        detail: `cgroup v2 at ${mount}${path} lacks the ${missing.join(" and ")} controller(s) (hybrid v1/v2 or not delegated)`,
      };
    }
    try {
      await access(`${mount}${path}`, constants.W_OK);
    } catch {
      return { delegatedV2: false, detail: `cgroup v2 at ${mount}${path} is not writable` };
    }
    return { delegatedV2: true, detail: `delegated cgroup v2 at ${mount}${path}` };
  }
  return { delegatedV2: false, detail: "no cgroup v2 hierarchy found" };
}
