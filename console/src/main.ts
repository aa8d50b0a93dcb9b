// The MCP Security Gateway console: a static page served by the edge at /console, calling the
// edge over gRPC-Web from the same origin (@mcp-gateway/client/web). See docs/console.md.
import "./styles.css";
import { createMcpWebClient, describeProblem } from "@mcp-gateway/client/web";
import type { AppContext } from "./context.js";
import { h, replace } from "./dom.js";
import { readClaims, type TokenClaims } from "./format.js";
import { createRecentTasks } from "./recent.js";
import { auditView } from "./views/audit.js";
import { filesView } from "./views/files.js";
import { runView } from "./views/run.js";
import { signInView } from "./views/sign-in.js";
import { taskDetailView, tasksView } from "./views/tasks.js";

const TOKEN_KEY = "mcpg.token";
/** Roles whose tokens show the Audit view (a hint only: the policy decides each call). */
const AUDIT_ROLES = new Set(["admin", "auditor"]);

const root = document.getElementById("app") as HTMLElement;

// A one-time sign-in link (mcp-gateway dev) lands here with #token=…: keep the token in this
// tab and take it out of the address bar and history at once.
if (location.hash.startsWith("#token=")) {
  const token = decodeURIComponent(location.hash.slice("#token=".length));
  sessionStorage.setItem(TOKEN_KEY, token);
  history.replaceState(null, "", `${location.pathname}#/run`);
}

let disposers: Array<() => void> = [];
function dispose(): void {
  for (const d of disposers) d();
  disposers = [];
}

const client = createMcpWebClient({
  baseUrl: location.origin,
  token: () => sessionStorage.getItem(TOKEN_KEY),
  onUnauthenticated: (e) => signOut(describeProblem(e).summary),
});

function signOut(message?: string): void {
  sessionStorage.removeItem(TOKEN_KEY);
  render(message);
}

function claimsOf(token: string | null): TokenClaims | undefined {
  if (!token) return undefined;
  try {
    return readClaims(token);
  } catch {
    return undefined;
  }
}

function shell(claims: TokenClaims, route: string): HTMLElement {
  const canAudit = claims.roles.some((r) => AUDIT_ROLES.has(r));
  const links: Array<[string, string, string]> = [
    ["#/run", "Run", "run"],
    ["#/files", "Files", "files"],
    ["#/tasks", "Tasks", "tasks"],
    ...(canAudit ? ([["#/audit", "Audit", "audit"]] as Array<[string, string, string]>) : []),
  ];
  const signOutButton = h("button", { type: "button", class: "quiet" }, "Sign out");
  signOutButton.addEventListener("click", () => signOut("You signed out."));
  return h(
    "header",
    { class: "top" },
    h("a", { class: "skip", href: "#main", onclick: skipToMain }, "Skip to content"),
    h("span", { class: "brand" }, "MCP Security Gateway"),
    h(
      "nav",
      { "aria-label": "Console" },
      h(
        "ul",
        {},
        ...links.map(([href, label, key]) =>
          h(
            "li",
            {},
            h("a", { href, ...(route === key ? { "aria-current": "page" } : {}) }, label),
          ),
        ),
      ),
    ),
    h(
      "div",
      { class: "who" },
      h("span", { class: "user", "data-sub": claims.sub }, claims.sub || "unknown"),
      h("span", { class: "roles" }, claims.roles.join(", ") || "no roles"),
      signOutButton,
    ),
  );
}

function skipToMain(e: Event): void {
  e.preventDefault();
  document.getElementById("main")?.focus();
}

function render(message?: string): void {
  dispose();
  const token = sessionStorage.getItem(TOKEN_KEY);
  const claims = claimsOf(token);
  const main = h("main", { id: "main", tabindex: "-1" });
  if (!claims) {
    replace(
      root,
      h("header", { class: "top" }, h("span", { class: "brand" }, "MCP Security Gateway")),
      main,
    );
    document.title = "Sign in · MCP Security Gateway";
    signInView(
      main,
      (t) => {
        sessionStorage.setItem(TOKEN_KEY, t);
        if (!location.hash.startsWith("#/") || location.hash === "#/") location.hash = "#/run";
        render();
      },
      message,
    );
    return;
  }
  const hash = location.hash.startsWith("#/") ? location.hash.slice(2) : "run";
  const [path = "run", search = ""] = hash.split("?", 2);
  const segments = path.split("/");
  const route = segments[0] || "run";
  const query = new URLSearchParams(search);
  replace(root, shell(claims, route), main);
  const ctx: AppContext = {
    client,
    claims,
    recent: createRecentTasks(sessionStorage, claims.sub),
    navigate: (to) => {
      if (location.hash === to) render();
      else location.hash = to;
    },
    onDispose: (fn) => disposers.push(fn),
  };
  const titles: Record<string, string> = {
    run: "Run",
    files: "Files",
    tasks: "Tasks",
    audit: "Audit",
  };
  document.title = `${titles[route] ?? "Not found"} · MCP Security Gateway`;
  switch (route) {
    case "run":
      runView(ctx, main);
      break;
    case "files":
      filesView(ctx, main, query);
      break;
    case "tasks":
      if (segments[1]) taskDetailView(ctx, main, decodeURIComponent(segments[1]));
      else tasksView(ctx, main);
      break;
    case "audit":
      auditView(ctx, main, query);
      break;
    default:
      replace(
        main,
        h("h1", { tabindex: "-1" }, "Not found"),
        h("p", {}, h("a", { href: "#/run" }, "Run a command")),
      );
  }
  // After navigating, move focus to the new view's heading so keyboard and screen-reader users
  // land on it (not on the first load: the page starts at the top anyway).
  if (!firstRender) main.querySelector<HTMLElement>("h1")?.focus();
  firstRender = false;
}

let firstRender = true;

window.addEventListener("hashchange", () => render());
render();
