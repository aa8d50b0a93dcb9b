import type { connectNodeAdapter } from "@connectrpc/connect-node";

type NodeHandlerFn = ReturnType<typeof connectNodeAdapter>;

/**
 * Adapts a request listener that returns a promise (like Hono's
 * `getRequestListener(app.fetch)`) to the `fallback` of Connect's node
 * adapter, which expects a plain listener for HTTP/1.1 and HTTP/2 requests.
 */
export function nodeFallback(listener: (req: never, res: never) => unknown): NodeHandlerFn {
  return (req, res) => {
    void listener(req as never, res as never);
  };
}
