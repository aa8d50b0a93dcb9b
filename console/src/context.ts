import type { McpWebClient } from "@mcp-gateway/client/web";
import type { TokenClaims } from "./format.js";
import type { RecentTasks } from "./recent.js";

/** What every view gets from the shell. */
export interface AppContext {
  /** The McpService client (gRPC-Web, same origin, the session's token on every call). */
  client: McpWebClient;
  /** Who is signed in (read from the token for display; the edge verifies every call). */
  claims: TokenClaims;
  /** Tasks this tab started or opened (sessionStorage: there is no ListTasks RPC). */
  recent: RecentTasks;
  /** Goes to a route, e.g. "#/tasks/task-…". */
  navigate(hash: string): void;
  /** Called when a view is replaced: stop streams and timers. */
  onDispose(fn: () => void): void;
}
