/** Path of the MCP endpoint on the edge port. */
export const MCP_PATH = "/mcp";
/** RFC 9728 well-known path (with the resource path appended for path-specific metadata). */
export const RESOURCE_METADATA_PATH = "/.well-known/oauth-protected-resource";
