import { describeProblem } from "@mcp-gateway/client/web";
import type { AppContext } from "../context.js";
import { field, h, replace } from "../dom.js";
import { splitCommandLine } from "../format.js";
import { problemView } from "../problem-view.js";
import { taskView } from "../task-view.js";

/** The last workspace used in this tab (shared with the Files view). */
export const WORKSPACE_KEY = "mcpg.workspace";

/** Run a command in a workspace and watch it. */
export function runView(ctx: AppContext, main: HTMLElement): void {
  const workspace = h("input", {
    name: "workspace",
    value: sessionStorage.getItem(WORKSPACE_KEY) ?? "default",
    autocomplete: "off",
    spellcheck: "false",
    required: true,
    pattern: "[A-Za-z0-9._\\-]{1,64}",
  });
  const command = h("input", {
    name: "command",
    autocomplete: "off",
    spellcheck: "false",
    placeholder: "ls -la",
    required: true,
    class: "mono",
  });
  const timeout = h("input", {
    name: "timeout",
    type: "number",
    min: "1",
    max: "3600",
    value: "60",
    inputmode: "numeric",
  });
  const submit = h("button", { type: "submit", class: "primary" }, "Run");
  const result = h("div", { class: "run-result" });
  const form = h(
    "form",
    { class: "run-form", "aria-label": "Run a command" },
    h("div", { class: "row" }, field("Workspace", workspace), field("Timeout (seconds)", timeout)),
    field(
      "Command",
      command,
      "Split into words like a shell would, without expansion or pipes; for those, run sh -c '…'.",
    ),
    h("div", { class: "actions" }, submit),
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    let parsed: ReturnType<typeof splitCommandLine>;
    try {
      parsed = splitCommandLine(command.value);
    } catch (err) {
      replace(
        result,
        h(
          "p",
          { class: "problem", role: "alert" },
          `The command line has an ${(err as Error).message}.`,
        ),
      );
      return;
    }
    if (parsed.command === "") {
      replace(result, h("p", { class: "problem", role: "alert" }, "Enter a command to run."));
      return;
    }
    sessionStorage.setItem(WORKSPACE_KEY, workspace.value);
    submit.disabled = true;
    replace(result, h("p", { class: "muted" }, "Submitting…"));
    try {
      const accepted = await ctx.client.executeCommand({
        command: parsed.command,
        args: parsed.args,
        workspace: workspace.value,
        timeout: Number(timeout.value) || 0,
      });
      ctx.recent.remember({
        taskId: accepted.taskId,
        commandLine: command.value,
        workspace: workspace.value,
        status: "QUEUED",
      });
      taskView(ctx, result, accepted.taskId);
    } catch (err) {
      replace(result, problemView(describeProblem(err), "The command was not run"));
    } finally {
      submit.disabled = false;
    }
  });
  replace(
    main,
    h("h1", { tabindex: "-1" }, "Run a command"),
    h(
      "p",
      { class: "lede" },
      "Runs in a sandbox on a runner, after the policy allowed it; every step is in the audit trail.",
    ),
    form,
    result,
  );
}
