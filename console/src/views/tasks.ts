import type { AppContext } from "../context.js";
import { field, h, replace } from "../dom.js";
import { taskView } from "../task-view.js";

/** Recent tasks of this tab, and opening any task by id. */
export function tasksView(ctx: AppContext, main: HTMLElement): void {
  const recent = ctx.recent.list();
  const id = h("input", {
    name: "task-id",
    autocomplete: "off",
    spellcheck: "false",
    placeholder: "task-…",
    required: true,
    class: "mono",
  });
  const open = h(
    "form",
    { class: "inline-form", "aria-label": "Open a task" },
    field("Task id", id),
    h("button", { type: "submit" }, "Open"),
  );
  open.addEventListener("submit", (e) => {
    e.preventDefault();
    ctx.navigate(`#/tasks/${encodeURIComponent(id.value.trim())}`);
  });
  const table =
    recent.length === 0
      ? h("p", { class: "muted" }, "No tasks in this tab yet. Run a command, or open a task by id.")
      : h(
          "div",
          { class: "table-wrap" },
          h(
            "table",
            { class: "list" },
            h("caption", { class: "sr-only" }, "Recent tasks"),
            h(
              "thead",
              {},
              h(
                "tr",
                {},
                h("th", { scope: "col" }, "Command"),
                h("th", { scope: "col" }, "Status"),
                h("th", { scope: "col" }, "Workspace"),
                h("th", { scope: "col" }, "Submitted"),
              ),
            ),
            h(
              "tbody",
              {},
              ...recent.map((t) =>
                h(
                  "tr",
                  {},
                  h(
                    "td",
                    {},
                    h(
                      "a",
                      { href: `#/tasks/${encodeURIComponent(t.taskId)}`, class: "mono" },
                      t.commandLine || t.taskId,
                    ),
                    h("div", { class: "task-id" }, t.taskId),
                  ),
                  h(
                    "td",
                    {},
                    h("span", { class: `badge badge-${t.status.toLowerCase()}` }, t.status || "–"),
                  ),
                  h("td", {}, t.workspace),
                  h("td", {}, new Date(t.at).toLocaleString()),
                ),
              ),
            ),
          ),
        );
  replace(
    main,
    h("h1", { tabindex: "-1" }, "Recent tasks"),
    h(
      "p",
      { class: "lede" },
      "Tasks started or opened in this browser tab (kept in this tab only). Open one to replay its output.",
    ),
    table,
    open,
  );
}

/** One task, reopened: its output replayed and followed. */
export function taskDetailView(ctx: AppContext, main: HTMLElement, taskId: string): void {
  const host = h("div", { class: "run-result" });
  replace(
    main,
    h("p", {}, h("a", { href: "#/tasks" }, "← Recent tasks")),
    h("h1", { tabindex: "-1" }, "Task"),
    host,
  );
  taskView(ctx, host, taskId);
}
