export { createMcpClient, type McpClient, type McpClientOptions } from "./client.js";
export { denyReasons, describeProblem, type Problem, type ProblemKind } from "./problem.js";
