export { createMcpClient, type McpClient, type McpClientOptions } from "./client.js";
