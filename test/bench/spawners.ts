/**
 * The sandbox spawners (ADR 0023) among a process's children: the benches count their CPU with
 * the runner's (they fork the launchers for it), which /proc/PID/stat of the runner does not.
 */
import { readdirSync, readFileSync } from "node:fs";

/** Pids of `pid`'s children that run `mcpg-sandbox-helper spawner`. */
export function spawnerPids(pid: number | "self"): number[] {
  const found: number[] = [];
  for (const task of readdirSync(`/proc/${pid}/task`)) {
    let children: string[] = [];
    try {
      children = readFileSync(`/proc/${pid}/task/${task}/children`, "utf8").trim().split(" ");
    } catch {
      continue;
    }
    for (const c of children.filter((x) => x !== "")) {
      try {
        if (readFileSync(`/proc/${c}/cmdline`, "utf8").split("\0")[1] === "spawner") {
          found.push(Number(c));
        }
      } catch {
        // ended meanwhile
      }
    }
  }
  return found;
}
