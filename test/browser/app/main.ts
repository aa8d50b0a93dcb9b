// The page script of the browser end-to-end test (bundled by esbuild at test time).
//
// It calls the edge across origins over gRPC-Web with the official
// @connectrpc/connect-web transport: ExecuteCommand, then StreamTaskOutput until
// the EXIT message, then GetTaskStatus; and renders what it got into the DOM.
// The query string carries `baseUrl` (the edge) and `token` (a bearer JWT).
//
// When it is done, <body data-state> is "done" or "error" (the test waits on it),
// and window.__result holds the raw values for the test to assert on.
import { Code, ConnectError, createClient, type Interceptor } from "@connectrpc/connect";
import { createGrpcWebTransport } from "@connectrpc/connect-web";
import { McpService, OutputKind, TaskStatus } from "@mcp-gateway/proto/mcp";

// The repository's tsconfig is Node-only (lib ES2023, no DOM), so the few
// browser globals this page touches are declared here, scoped to this module.
interface PageElement {
  textContent: string | null;
}
declare const document: {
  body: { setAttribute(name: string, value: string): void };
  getElementById(id: string): PageElement | null;
};
declare const location: { search: string; origin: string };
declare const window: { __result?: PageResult };

/** What the page found, for the test to read with page.evaluate. */
interface PageResult {
  state: "done" | "error";
  taskId: string;
  stdout: string;
  status: string;
  exitCode: number | null;
  error: string;
}

const params = new URLSearchParams(location.search);
const baseUrl = params.get("baseUrl") ?? "";
const token = params.get("token") ?? "";

function show(id: string, text: string): void {
  const el = document.getElementById(id);
  if (el) el.textContent = text;
}

/** Adds the bearer token to every call, the way a console would. */
const bearer: Interceptor = (next) => async (req) => {
  req.header.set("authorization", `Bearer ${token}`);
  return next(req);
};

const client = createClient(
  McpService,
  createGrpcWebTransport({ baseUrl, interceptors: [bearer] }),
);

async function run(): Promise<PageResult> {
  const result: PageResult = {
    state: "done",
    taskId: "",
    stdout: "",
    status: "",
    exitCode: null,
    error: "",
  };
  show("origin", location.origin);
  show("endpoint", baseUrl);
  show("status", "SUBMITTING");
  const accepted = await client.executeCommand({
    command: "echo",
    args: ["hello", "from", "the", "browser"],
  });
  result.taskId = accepted.taskId;
  show("task-id", accepted.taskId);
  show("status", TaskStatus[accepted.status] ?? String(accepted.status));

  const decoder = new TextDecoder();
  for await (const chunk of client.streamTaskOutput({ taskId: accepted.taskId })) {
    if (chunk.kind === OutputKind.STDOUT) {
      result.stdout += decoder.decode(chunk.data, { stream: true });
      show("output", result.stdout);
    } else if (chunk.kind === OutputKind.EVENT) {
      show("status", TaskStatus[chunk.status] ?? chunk.message);
    } else if (chunk.kind === OutputKind.EXIT) {
      result.status = TaskStatus[chunk.status] ?? String(chunk.status);
      result.exitCode = chunk.exitCode;
    }
  }
  result.stdout += decoder.decode();
  show("output", result.stdout);
  show("status", result.status || "STREAM ENDED WITHOUT EXIT");
  show("exit-code", result.exitCode === null ? "–" : String(result.exitCode));

  const { task } = await client.getTaskStatus({ taskId: accepted.taskId });
  if (task) {
    const ms = task.result?.executionTimeMs;
    show("runner", `${task.runnerId}${ms === undefined ? "" : ` · ${ms} ms`}`);
  }
  return result;
}

run()
  .catch((err: unknown): PageResult => {
    const e = ConnectError.from(err);
    const text = `${Code[e.code] ?? e.code}: ${e.rawMessage}`;
    show("status", "FAILED");
    show("error", text);
    return { state: "error", taskId: "", stdout: "", status: "", exitCode: null, error: text };
  })
  .then((result) => {
    window.__result = result;
    document.body.setAttribute("data-state", result.state);
  });
