import type { Http2SecureServer, Http2Server, ServerHttp2Session } from "node:http2";

/**
 * Tracks an HTTP/2 server's sessions and returns a function that closes them
 * all gracefully (GOAWAY: in-flight streams finish, no new ones start), for
 * shutdown.
 */
export function trackHttp2Sessions(server: Http2Server | Http2SecureServer): () => void {
  const sessions = new Set<ServerHttp2Session>();
  server.on("session", (s: ServerHttp2Session) => {
    sessions.add(s);
    s.on("close", () => sessions.delete(s));
  });
  return () => {
    for (const s of sessions) s.close();
  };
}
