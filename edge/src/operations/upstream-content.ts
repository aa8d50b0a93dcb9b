import { Code, ConnectError } from "@connectrpc/connect";
import type { OperationInput } from "@mcp-gateway/common/authz";
import { GatewayError } from "@mcp-gateway/common/errors";
import type {
  CompleteRequest,
  CompleteResult,
  GetPromptResult,
  Prompt,
  ReadResourceResult,
  Resource,
  ResourceTemplate,
} from "@modelcontextprotocol/sdk/types.js";
import type { UpstreamRequestOptions, Upstreams } from "../mcp/upstreams.js";
import type { Pipeline } from "../pipeline/authorize.js";
import type { RequestContext } from "../pipeline/context.js";
import { auditUpstreamOutcome, digestOf, upstreamCaller } from "./upstream-tools.js";

/** Dependencies of the upstream resource, prompt and completion operations. */
export interface UpstreamContentDeps {
  pipeline: Pipeline;
  /** The configured upstream MCP servers (none: nothing to list, every request refused). */
  upstreams?: Upstreams | undefined;
  /** Audit the full prompt arguments ("full") or only their digest ("digest"). */
  auditArguments?: "digest" | "full";
  /** The active lease's fencing token for runner calls (stdio servers). */
  fencingToken?: () => bigint;
}

/** An entry of an upstream's list, with the server it belongs to. */
export interface FromUpstream<T> {
  server: string;
  item: T;
}

/** What `resources/list` and `resources/templates/list` may show. */
export interface ResourceDiscovery {
  resources: readonly FromUpstream<Resource>[];
  templates: readonly FromUpstream<ResourceTemplate>[];
  /** Upstreams that could not be listed, with the reason (their entries are left out). */
  unavailable: readonly string[];
}

/** What `prompts/list` may show. */
export interface PromptDiscovery {
  prompts: readonly FromUpstream<Prompt>[];
  /** Upstreams that could not be listed, with the reason (their prompts are left out). */
  unavailable: readonly string[];
}

/** What a completion is for, in the upstream's own names. */
export type CompletionRef =
  | { type: "ref/prompt"; name: string }
  | { type: "ref/resource"; uri: string };

/** Upstream resources, prompts and completions (part of the operations layer). */
export interface UpstreamContentOperations {
  /** Names of the configured upstreams (the MCP door advertises resources and prompts when any). */
  upstreamServers(): readonly string[];
  /**
   * The upstream resources and resource templates the caller may read: one `list_resources`
   * decision (audited) over every upstream's list; none when the caller may not list.
   */
  discoverResources(rc: RequestContext, signal: AbortSignal): Promise<ResourceDiscovery>;
  /** The upstream prompts the caller may get: one `list_prompts` decision (audited). */
  discoverPrompts(rc: RequestContext, signal: AbortSignal): Promise<PromptDiscovery>;
  /**
   * Reads a resource of an upstream: decided as `read_resource` on server and URI, audited
   * with the outcome (duration, result digest).
   */
  readUpstreamResource(
    rc: RequestContext,
    req: { server: string; uri: string },
    signal: AbortSignal,
  ): Promise<ReadResourceResult>;
  /**
   * Subscribes to updates of a remote upstream's resource: allowed exactly where reading it
   * would be (decided as `read_resource`, audited with `subscribe: true`). `onUpdated` is
   * called for each update; resolves with the function that ends the subscription.
   */
  subscribeUpstreamResource(
    rc: RequestContext,
    req: { server: string; uri: string },
    onUpdated: () => void,
    signal: AbortSignal,
  ): Promise<() => void>;
  /**
   * Gets a prompt of an upstream: decided as `get_prompt` on server, name and full
   * arguments (audited with their digest), audited with the outcome.
   */
  getUpstreamPrompt(
    rc: RequestContext,
    req: { server: string; prompt: string; arguments: Record<string, string> },
    signal: AbortSignal,
  ): Promise<GetPromptResult>;
  /**
   * Completes an argument of an upstream prompt or resource template: decided as
   * `complete` (allowed where the prompt or resource would be), audited with the outcome.
   */
  completeUpstream(
    rc: RequestContext,
    req: {
      server: string;
      ref: CompletionRef;
      argument: { name: string; value: string };
      context?: { arguments?: Record<string, string> };
    },
    signal: AbortSignal,
  ): Promise<CompleteResult>;
}

/** A resource URI the policy can match: 1 to 4096 characters, no control characters. */
function checkUri(uri: string): void {
  // biome-ignore lint/suspicious/noControlCharactersInRegex: refusing control characters
  if (uri.length === 0 || uri.length > 4096 || /[\u0000-\u001f\u007f]/.test(uri)) {
    throw new GatewayError(
      "invalid_argument",
      "a resource URI has 1 to 4096 characters and no control characters",
    );
  }
}

/**
 * Creates the operations on upstream resources, prompts and completions. Like upstream tool
 * calls, each one validates, decides by policy (the `upstream` input names the server and
 * the resource URI or prompt as the upstream knows it), audits the decision, acts through
 * the upstream's client with the gateway's credentials, and audits the outcome.
 *
 * @example
 * const content = createUpstreamContentOperations({ pipeline, upstreams });
 * const res = await content.readUpstreamResource(rc, { server: "docs", uri: "file:///a.md" }, signal);
 */
export function createUpstreamContentOperations(
  deps: UpstreamContentDeps,
): UpstreamContentOperations {
  const { pipeline } = deps;
  const callerOf = (rc: RequestContext) => upstreamCaller(deps, rc);

  function upstreamsOf(server: string): Upstreams {
    const upstreams = deps.upstreams;
    if (!upstreams?.names().includes(server)) {
      throw new GatewayError(
        "invalid_argument",
        `no upstream MCP server named "${server.slice(0, 40)}"`,
      );
    }
    return upstreams;
  }

  /** One list per upstream, gathered; a failing upstream is left out and named. */
  async function gather<T>(
    rc: RequestContext,
    list: (u: Upstreams, server: string, o: UpstreamRequestOptions) => Promise<T[]>,
    signal: AbortSignal,
  ): Promise<{ found: FromUpstream<T>[]; unavailable: string[] }> {
    const found: FromUpstream<T>[] = [];
    const unavailable: string[] = [];
    const u = deps.upstreams;
    if (!u) return { found, unavailable };
    await Promise.all(
      u.names().map(async (server) => {
        try {
          for (const item of await list(u, server, { signal, caller: callerOf(rc) })) {
            found.push({ server, item });
          }
        } catch (err) {
          unavailable.push(err instanceof Error ? err.message : String(err));
          rc.logger.warn({ err: String(err), upstream: server }, "upstream list failed");
        }
      }),
    );
    return { found, unavailable };
  }

  /** The entries of a discovery decision the policy lets the caller see ("<server>/<key>"). */
  async function visible(
    rc: RequestContext,
    operation: "list_resources" | "list_prompts",
    catalog: NonNullable<OperationInput["catalog"]>,
  ): Promise<ReadonlySet<string>> {
    if (catalog.length === 0) return new Set();
    try {
      const d = await pipeline.authorize(
        rc,
        { operation, workspace: "", catalog },
        { params: { entries: catalog.length } },
      );
      return new Set(d.tools);
    } catch (err) {
      if (err instanceof ConnectError && err.code === Code.PermissionDenied) return new Set();
      throw err;
    }
  }

  /**
   * Decide → audit → act → audit the outcome, as for upstream tool calls: the outcome record
   * (duration, result digest) is appended after the answer has left.
   */
  async function decideAndRun<T>(
    rc: RequestContext,
    op: OperationInput,
    params: Record<string, unknown>,
    act: () => Promise<T>,
  ): Promise<T> {
    const decision = await pipeline.authorize(rc, op, { params });
    const started = performance.now();
    let result: T | undefined;
    let failure: unknown;
    try {
      result = await act();
      return result;
    } catch (err) {
      failure = err;
      throw err;
    } finally {
      auditUpstreamOutcome(pipeline, rc, {
        operation: op.operation,
        params,
        revision: decision.revision,
        started,
        outcome: failure ? "failed" : "completed",
        failure,
        ...(result !== undefined ? { result } : {}),
      });
    }
  }

  return {
    upstreamServers: () => deps.upstreams?.names() ?? [],

    async discoverResources(rc, signal) {
      const lists = await gather(
        rc,
        async (u, server, o) => {
          const r = await u.resources(server, o);
          return [
            ...r.resources.map((item) => ({ kind: "resource" as const, item })),
            ...r.templates.map((item) => ({ kind: "template" as const, item })),
          ];
        },
        signal,
      );
      const keyOf = (e: FromUpstream<{ kind: string; item: Resource | ResourceTemplate }>) =>
        "uri" in e.item.item ? e.item.item.uri : (e.item.item as ResourceTemplate).uriTemplate;
      const seen = await visible(
        rc,
        "list_resources",
        lists.found.map((e) => ({ server: e.server, resource: keyOf(e) })),
      );
      const allowed = lists.found.filter((e) => seen.has(`${e.server}/${keyOf(e)}`));
      return {
        resources: allowed.flatMap((e) =>
          e.item.kind === "resource" ? [{ server: e.server, item: e.item.item as Resource }] : [],
        ),
        templates: allowed.flatMap((e) =>
          e.item.kind === "template"
            ? [{ server: e.server, item: e.item.item as ResourceTemplate }]
            : [],
        ),
        unavailable: lists.unavailable,
      };
    },

    async discoverPrompts(rc, signal) {
      const lists = await gather(rc, (u, server, o) => u.prompts(server, o), signal);
      const seen = await visible(
        rc,
        "list_prompts",
        lists.found.map((e) => ({ server: e.server, prompt: e.item.name })),
      );
      return {
        prompts: lists.found.filter((e) => seen.has(`${e.server}/${e.item.name}`)),
        unavailable: lists.unavailable,
      };
    },

    async readUpstreamResource(rc, req, signal) {
      const upstreams = upstreamsOf(req.server);
      checkUri(req.uri);
      return decideAndRun(
        rc,
        {
          operation: "read_resource",
          workspace: "",
          upstream: { server: req.server, resource: req.uri },
        },
        { server: req.server, uri: req.uri },
        () => upstreams.readResource(req.server, req.uri, { signal, caller: callerOf(rc) }),
      );
    },

    async subscribeUpstreamResource(rc, req, onUpdated, signal) {
      const upstreams = upstreamsOf(req.server);
      checkUri(req.uri);
      const end = { fn: (): void => undefined };
      await decideAndRun(
        rc,
        {
          operation: "read_resource",
          workspace: "",
          upstream: { server: req.server, resource: req.uri },
        },
        { server: req.server, uri: req.uri, subscribe: true },
        async () => {
          end.fn = await upstreams.subscribe(req.server, req.uri, onUpdated, {
            signal,
            caller: callerOf(rc),
          });
        },
      );
      return end.fn;
    },

    async getUpstreamPrompt(rc, req, signal) {
      const upstreams = upstreamsOf(req.server);
      const params: Record<string, unknown> = {
        server: req.server,
        prompt: req.prompt,
        arguments_digest: digestOf(req.arguments),
        ...(deps.auditArguments === "full" ? { arguments: req.arguments } : {}),
      };
      return decideAndRun(
        rc,
        {
          operation: "get_prompt",
          workspace: "",
          upstream: { server: req.server, prompt: req.prompt, arguments: req.arguments },
        },
        params,
        () =>
          upstreams.getPrompt(req.server, req.prompt, req.arguments, {
            signal,
            caller: callerOf(rc),
          }),
      );
    },

    async completeUpstream(rc, req, signal) {
      const upstreams = upstreamsOf(req.server);
      if (req.ref.type === "ref/resource") checkUri(req.ref.uri);
      const target =
        req.ref.type === "ref/prompt" ? { prompt: req.ref.name } : { resource: req.ref.uri };
      const params: Record<string, unknown> = {
        server: req.server,
        ...target,
        argument: req.argument.name,
        value_digest: digestOf(req.argument.value),
      };
      const upstreamParams: CompleteRequest["params"] = {
        ref: req.ref,
        argument: req.argument,
        ...(req.context ? { context: req.context } : {}),
      };
      return decideAndRun(
        rc,
        {
          operation: "complete",
          workspace: "",
          upstream: { server: req.server, ...target, argument: req.argument },
        },
        params,
        () => upstreams.complete(req.server, upstreamParams, { signal, caller: callerOf(rc) }),
      );
    },
  };
}
