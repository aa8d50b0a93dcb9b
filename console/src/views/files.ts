// Browse, view, upload, edit and delete the files of a workspace (ListDirectory, ReadFile,
// WriteFile, DeleteFile — each decided by the policy and audited on the edge).
import { describeProblem } from "@mcp-gateway/client/web";
import { type FileEntry, FileType } from "@mcp-gateway/proto/mcp";
import type { AppContext } from "../context.js";
import { field, h, replace } from "../dom.js";
import { formatBytes } from "../format.js";
import { problemView } from "../problem-view.js";
import { WORKSPACE_KEY } from "./run.js";

/** Files larger than this are not opened in the editor. */
const MAX_EDIT_BYTES = 1024 * 1024;

const join = (dir: string, name: string) => (dir === "" ? name : `${dir}/${name}`);

/** The Files view; `query` carries `ws` (workspace) and `path` (directory). */
export function filesView(ctx: AppContext, main: HTMLElement, query: URLSearchParams): void {
  const ws = query.get("ws") || sessionStorage.getItem(WORKSPACE_KEY) || "default";
  const dir = (query.get("path") ?? "").replace(/^\/+|\/+$/g, "");
  sessionStorage.setItem(WORKSPACE_KEY, ws);
  const go = (workspace: string, path: string) =>
    ctx.navigate(`#/files?${new URLSearchParams({ ws: workspace, path })}`);

  const wsInput = h("input", {
    name: "workspace",
    value: ws,
    autocomplete: "off",
    spellcheck: "false",
    required: true,
  });
  const wsForm = h(
    "form",
    { class: "inline-form", "aria-label": "Choose a workspace" },
    field("Workspace", wsInput),
    h("button", { type: "submit" }, "Open"),
  );
  wsForm.addEventListener("submit", (e) => {
    e.preventDefault();
    go(wsInput.value.trim(), "");
  });

  // Breadcrumb: workspace / a / b
  const parts = dir === "" ? [] : dir.split("/");
  const crumbs = h(
    "nav",
    { "aria-label": "Folder", class: "crumbs" },
    h(
      "ol",
      {},
      h("li", {}, h("a", { href: `#/files?${new URLSearchParams({ ws, path: "" })}` }, ws)),
      ...parts.map((p, i) => {
        const path = parts.slice(0, i + 1).join("/");
        const last = i === parts.length - 1;
        return h(
          "li",
          {},
          last
            ? h("span", { "aria-current": "page" }, p)
            : h("a", { href: `#/files?${new URLSearchParams({ ws, path })}` }, p),
        );
      }),
    ),
  );

  const status = h("div", { class: "status-line", role: "status", "aria-live": "polite" });
  const listing = h("div", { class: "listing" }, h("p", { class: "muted" }, "Loading…"));
  const editor = h("div", { class: "editor-host" });

  const say = (text: string) => replace(status, text);
  const fail = (err: unknown, what: string) => {
    say("");
    replace(editor, problemView(describeProblem(err), what));
  };

  // Upload: each chosen file is written into this folder.
  const upload = h("input", { type: "file", multiple: true, name: "upload" });
  upload.addEventListener("change", async () => {
    const files = [...(upload.files ?? [])];
    for (const f of files) {
      try {
        const content = new Uint8Array(await f.arrayBuffer());
        await ctx.client.writeFile({ workspace: ws, path: join(dir, f.name), content });
        say(`Uploaded ${f.name} (${formatBytes(content.length)}).`);
      } catch (err) {
        fail(err, `Uploading ${f.name} failed`);
        break;
      }
    }
    upload.value = "";
    await load();
  });

  const newName = h("input", {
    name: "new-file",
    autocomplete: "off",
    spellcheck: "false",
    required: true,
  });
  const newForm = h(
    "form",
    { class: "inline-form", "aria-label": "Create a file" },
    field("New file name", newName),
    h("button", { type: "submit" }, "Create"),
  );
  newForm.addEventListener("submit", async (e) => {
    e.preventDefault();
    const path = join(dir, newName.value.trim());
    try {
      await ctx.client.writeFile({
        workspace: ws,
        path,
        content: new Uint8Array(),
        createParents: true,
      });
      say(`Created ${path}.`);
      newName.value = "";
      await load();
      await openFile(path);
    } catch (err) {
      fail(err, `Creating ${path} failed`);
    }
  });

  /** Asks inline before deleting (no modal dialog): returns the confirm row. */
  const confirmDelete = (entry: FileEntry, path: string, cell: HTMLElement) => {
    const isDir = entry.type === FileType.DIRECTORY;
    const yes = h("button", { type: "button", class: "danger" }, "Yes, delete");
    const no = h("button", { type: "button" }, "Keep");
    const restore = Array.from(cell.childNodes);
    replace(
      cell,
      h(
        "span",
        { class: "confirm" },
        `Delete ${entry.name}${isDir ? " and everything in it" : ""}?`,
      ),
      yes,
      no,
    );
    yes.focus();
    no.addEventListener("click", () => replace(cell, ...restore));
    yes.addEventListener("click", async () => {
      try {
        await ctx.client.deleteFile({ workspace: ws, path, recursive: isDir });
        if (editor.getAttribute("data-path") === path) replace(editor);
        await load();
        say(`Deleted ${path}.`);
      } catch (err) {
        fail(err, `Deleting ${path} failed`);
        replace(cell, ...restore);
      }
    });
  };

  const openFile = async (path: string) => {
    say(`Opening ${path}…`);
    let content: Uint8Array;
    try {
      content = (await ctx.client.readFile({ workspace: ws, path })).content;
    } catch (err) {
      fail(err, `Opening ${path} failed`);
      return;
    }
    say("");
    editor.setAttribute("data-path", path);
    let text: string | undefined;
    try {
      text =
        content.length <= MAX_EDIT_BYTES
          ? new TextDecoder("utf-8", { fatal: true }).decode(content)
          : undefined;
    } catch {
      text = undefined;
    }
    const close = h("button", { type: "button" }, "Close");
    close.addEventListener("click", () => {
      replace(editor);
      editor.removeAttribute("data-path");
    });
    if (text === undefined) {
      replace(
        editor,
        h(
          "section",
          { class: "editor", "aria-label": `File ${path}` },
          h("h2", {}, path),
          h(
            "p",
            { class: "muted" },
            `${formatBytes(content.length)}: binary or too large to edit here.`,
          ),
          h("div", { class: "actions" }, close),
        ),
      );
      return;
    }
    const area = h("textarea", { name: "content", rows: "14", spellcheck: "false", class: "mono" });
    area.value = text;
    const save = h("button", { type: "submit", class: "primary" }, "Save");
    const form = h(
      "form",
      { class: "editor", "aria-label": `Edit ${path}` },
      h("h2", {}, path),
      field(`Content of ${path}`, area),
      h("div", { class: "actions" }, save, close),
    );
    form.addEventListener("submit", async (e) => {
      e.preventDefault();
      save.disabled = true;
      try {
        const r = await ctx.client.writeFile({
          workspace: ws,
          path,
          content: new TextEncoder().encode(area.value),
        });
        await load();
        say(`Saved ${path} (${formatBytes(Number(r.bytesWritten))}).`);
      } catch (err) {
        fail(err, `Saving ${path} failed`);
      } finally {
        save.disabled = false;
      }
    });
    replace(editor, form);
    area.focus();
  };

  const load = async () => {
    let entries: FileEntry[];
    try {
      entries = (await ctx.client.listDirectory({ workspace: ws, path: dir })).entries;
    } catch (err) {
      const p = describeProblem(err);
      if (p.kind === "not_found" && dir === "") {
        replace(
          listing,
          h(
            "p",
            { class: "muted" },
            "This workspace is empty. Upload or create a file to start it.",
          ),
        );
        return;
      }
      replace(listing, problemView(p, "This folder cannot be listed"));
      return;
    }
    const sorted = [...entries].sort(
      (a, b) =>
        Number(b.type === FileType.DIRECTORY) - Number(a.type === FileType.DIRECTORY) ||
        a.name.localeCompare(b.name),
    );
    if (sorted.length === 0) {
      replace(listing, h("p", { class: "muted" }, "This folder is empty."));
      return;
    }
    replace(
      listing,
      h(
        "div",
        { class: "table-wrap" },
        h(
          "table",
          { class: "list files" },
          h("caption", { class: "sr-only" }, `Files in ${ws}/${dir}`),
          h(
            "thead",
            {},
            h(
              "tr",
              {},
              h("th", { scope: "col" }, "Name"),
              h("th", { scope: "col" }, "Size"),
              h("th", { scope: "col" }, "Modified"),
              h("th", { scope: "col" }, h("span", { class: "sr-only" }, "Actions")),
            ),
          ),
          h(
            "tbody",
            {},
            ...sorted.map((entry) => {
              const path = join(dir, entry.name);
              const isDir = entry.type === FileType.DIRECTORY;
              const name = isDir
                ? h(
                    "a",
                    { href: `#/files?${new URLSearchParams({ ws, path })}`, class: "dir" },
                    `${entry.name}/`,
                  )
                : h(
                    "button",
                    { type: "button", class: "link", onclick: () => void openFile(path) },
                    entry.name,
                  );
              const actions = h("td", { class: "row-actions" });
              const del = h(
                "button",
                { type: "button", class: "danger small", "aria-label": `Delete ${entry.name}` },
                "Delete",
              );
              del.addEventListener("click", () => confirmDelete(entry, path, actions));
              actions.append(del);
              const modified = entry.modifiedAt
                ? new Date(Number(entry.modifiedAt.seconds) * 1000).toLocaleString()
                : "–";
              return h(
                "tr",
                { "data-name": entry.name },
                h("td", {}, name),
                h("td", {}, isDir ? "–" : formatBytes(Number(entry.size))),
                h("td", {}, modified),
                actions,
              );
            }),
          ),
        ),
      ),
    );
  };

  replace(
    main,
    h("h1", { tabindex: "-1" }, "Files"),
    wsForm,
    crumbs,
    listing,
    status,
    h(
      "div",
      { class: "file-tools" },
      h(
        "div",
        { class: "field" },
        h("label", { for: "upload" }, "Upload files to this folder"),
        upload,
      ),
      newForm,
    ),
    editor,
  );
  upload.id = "upload";
  void load();
}
