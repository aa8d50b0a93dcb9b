import type { TaskCondition, TaskRecord } from "./types.js";

/** Whether a compare-and-set condition holds for the task as stored now. */
export function conditionHolds(current: TaskRecord, condition: TaskCondition): boolean {
  if (condition.edgeId !== undefined && (current.edgeId ?? "") !== condition.edgeId) return false;
  if (condition.runnerId !== undefined && current.runnerId !== condition.runnerId) return false;
  return true;
}
