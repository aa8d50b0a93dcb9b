// One task: its output streamed live over gRPC-Web (StreamTaskOutput replays what was produced
// so far, then follows), a Cancel button while it runs, and once it ended the exit code,
// duration, resource usage and truncation from GetTaskStatus.
import { describeProblem } from "@mcp-gateway/client/web";
import { OutputKind, type TaskInfo, TaskStatus } from "@mcp-gateway/proto/mcp";
import type { AppContext } from "./context.js";
import { h, replace } from "./dom.js";
import { formatBytes, formatCommandLine, formatDuration } from "./format.js";
import { problemView } from "./problem-view.js";

/** Characters of output kept on the page; the rest is counted, not shown. */
const MAX_SHOWN = 2_000_000;

const TERMINAL = new Set([
  TaskStatus.COMPLETED,
  TaskStatus.FAILED,
  TaskStatus.CANCELLED,
  TaskStatus.TIMED_OUT,
]);

/** "COMPLETED" for TaskStatus.COMPLETED. */
export function statusName(s: TaskStatus): string {
  return TaskStatus[s] ?? String(s);
}

function badge(status: string): HTMLElement {
  return h("span", { class: `badge badge-${status.toLowerCase()}`, "data-status": status }, status);
}

function ms(t: { seconds: bigint; nanos: number } | undefined): number | undefined {
  return t ? Number(t.seconds) * 1000 + Math.floor(t.nanos / 1e6) : undefined;
}

/** The facts of a finished (or running) task, as a description list. */
function facts(task: TaskInfo): HTMLElement {
  const r = task.result;
  const usage = r?.usage;
  const started = ms(task.startedAt);
  const finished = ms(task.finishedAt);
  const rows: Array<[string, string, string]> = [
    ["Exit code", "exit-code", r && TERMINAL.has(task.status) ? String(r.exitCode) : "–"],
    [
      "Duration",
      "duration",
      r?.executionTimeMs
        ? formatDuration(Number(r.executionTimeMs))
        : started && finished
          ? formatDuration(finished - started)
          : "–",
    ],
    [
      "CPU time",
      "cpu",
      usage
        ? `${formatDuration(Number(usage.userCpuMs))} user, ${formatDuration(Number(usage.systemCpuMs))} system`
        : "–",
    ],
    ["Peak memory", "memory", usage ? formatBytes(Number(usage.maxRssKb) * 1024) : "–"],
    [
      "Output truncated",
      "truncated",
      r
        ? r.stdoutTruncated || r.stderrTruncated
          ? [r.stdoutTruncated ? "stdout" : "", r.stderrTruncated ? "stderr" : ""]
              .filter(Boolean)
              .join(" and ")
              .concat(" cut at the output limit")
          : "no"
        : "–",
    ],
    ["Signal", "signal", r?.signal || "–"],
    ["Runner", "runner", task.runnerId || "–"],
    ["Workspace", "workspace", task.workspace || "default"],
    ["Submitted by", "owner", task.owner || "–"],
  ];
  return h(
    "dl",
    { class: "facts" },
    ...rows.map(([label, key, value]) => [
      h("dt", {}, label),
      h("dd", { "data-fact": key }, value),
    ]),
    task.statusMessage
      ? [h("dt", {}, "Reason"), h("dd", { "data-fact": "reason" }, task.statusMessage)]
      : null,
  );
}

/**
 * Renders a task into `host` and follows it. Resolves when the stream ended
 * (or the view was disposed).
 */
export function taskView(ctx: AppContext, host: HTMLElement, taskId: string): void {
  const abort = new AbortController();
  ctx.onDispose(() => abort.abort());
  const status = h("span", { class: "status", "aria-live": "polite" }, badge("CONNECTING"));
  const cancel = h("button", { type: "button", class: "danger", disabled: true }, "Cancel");
  const out = h("pre", {
    class: "output",
    id: "output",
    role: "log",
    "aria-label": "Output",
    tabindex: "0",
  });
  const notice = h("div", { class: "notices" });
  const details = h("div", { class: "task-facts" });
  const runnerNote = h("div", { class: "runner-note" });
  const title = h("code", { class: "task-command" }, "");
  replace(
    host,
    h(
      "section",
      { class: "task", "aria-label": `Task ${taskId}`, "data-task-id": taskId },
      h(
        "div",
        { class: "task-head" },
        h("div", {}, title, h("div", { class: "task-id" }, taskId)),
        h("div", { class: "task-actions" }, status, cancel),
      ),
      out,
      runnerNote,
      notice,
      details,
    ),
  );
  let shown = 0;
  let hidden = 0;
  const write = (text: string, cls: string) => {
    if (shown + text.length > MAX_SHOWN) {
      hidden += text.length;
      return;
    }
    shown += text.length;
    const last = out.lastElementChild;
    if (last && last.className === cls) last.append(text);
    else out.append(h("span", { class: cls }, text));
    out.scrollTop = out.scrollHeight;
  };
  const setStatus = (s: string) => {
    if (s === current) return;
    current = s;
    replace(status, badge(s));
    ctx.recent.remember({ taskId, commandLine: "", workspace: "", status: s });
  };
  const showTask = (task: TaskInfo) => {
    replace(title, formatCommandLine(task.command, task.args));
    ctx.recent.remember({
      taskId,
      commandLine: formatCommandLine(task.command, task.args),
      workspace: task.workspace || "default",
      status: statusName(task.status),
    });
    replace(details, facts(task));
    // A task that failed for want of a runner is said so in words, not only as FAILED.
    if (task.status === TaskStatus.FAILED && /runner/i.test(task.statusMessage)) {
      replace(
        runnerNote,
        h(
          "div",
          {
            class: "problem problem-runner_unavailable",
            role: "alert",
            "data-kind": "runner_unavailable",
          },
          h(
            "p",
            { class: "summary" },
            /no runner/i.test(task.statusMessage)
              ? "No runner was available, so this task did not run. Try again in a moment, or ask an operator to check the runners."
              : "The runner of this task was lost before it finished.",
          ),
          h("p", { class: "detail" }, "Gateway message: ", h("code", {}, task.statusMessage)),
        ),
      );
    }
  };

  cancel.addEventListener("click", async () => {
    cancel.disabled = true;
    cancel.textContent = "Cancelling…";
    try {
      await ctx.client.cancelTask({ taskId });
    } catch (err) {
      notice.append(problemView(describeProblem(err), "Cancel failed"));
      cancel.disabled = false;
      cancel.textContent = "Cancel";
    }
  });

  let ended = false;
  let current = "";
  /** The furthest lifecycle step seen: statuses only move forward (created → queued → running). */
  let reached: TaskStatus = TaskStatus.UNSPECIFIED;
  const advance = (s: TaskStatus) => {
    if (ended || s <= reached) return;
    reached = s;
    setStatus(statusName(s));
  };
  /** Output arrived: the task runs (the stream carries output and notices, not statuses). */
  const running = () => advance(TaskStatus.RUNNING);
  /** Statuses between output (queued → running): GetTaskStatus once a second until it ended. */
  const poll = async () => {
    while (!ended && !abort.signal.aborted) {
      await new Promise((r) => setTimeout(r, 1000));
      if (ended || abort.signal.aborted) return;
      try {
        const { task } = await ctx.client.getTaskStatus({ taskId }, { signal: abort.signal });
        // A reply sent before output arrived may say QUEUED after the output said RUNNING.
        if (task && !TERMINAL.has(task.status)) advance(task.status);
      } catch {
        return; // the stream reports failures
      }
    }
  };

  const follow = async () => {
    try {
      const { task } = await ctx.client.getTaskStatus({ taskId }, { signal: abort.signal });
      if (task) {
        showTask(task);
        if (TERMINAL.has(task.status)) setStatus(statusName(task.status));
        else advance(task.status);
        cancel.disabled = TERMINAL.has(task.status);
        ended = TERMINAL.has(task.status);
      }
      void poll();
      const stdout = new TextDecoder();
      const stderr = new TextDecoder();
      for await (const chunk of ctx.client.streamTaskOutput({ taskId }, { signal: abort.signal })) {
        switch (chunk.kind) {
          case OutputKind.STDOUT:
            running();
            write(stdout.decode(chunk.data, { stream: true }), "stdout");
            break;
          case OutputKind.STDERR:
            running();
            write(stderr.decode(chunk.data, { stream: true }), "stderr");
            break;
          case OutputKind.EVENT:
            if (chunk.message) notice.append(h("p", { class: "event" }, chunk.message));
            break;
          case OutputKind.EXIT:
            ended = true;
            setStatus(statusName(chunk.status));
            break;
        }
      }
      ended = true;
      write(stdout.decode(), "stdout");
      write(stderr.decode(), "stderr");
      if (hidden > 0) {
        notice.append(
          h("p", { class: "event" }, `${formatBytes(hidden)} more output not shown on this page.`),
        );
      }
      cancel.disabled = true;
      cancel.textContent = "Cancel";
      const { task: done } = await ctx.client.getTaskStatus({ taskId }, { signal: abort.signal });
      if (done) {
        showTask(done);
        setStatus(statusName(done.status));
      }
      host.setAttribute("data-state", "done");
    } catch (err) {
      ended = true;
      if (abort.signal.aborted) return;
      cancel.disabled = true;
      notice.append(problemView(describeProblem(err)));
      host.setAttribute("data-state", "error");
    }
  };
  host.setAttribute("data-state", "following");
  void follow();
}
