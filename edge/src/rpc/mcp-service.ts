import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import type { ServiceImpl } from "@connectrpc/connect";
import type { McpService, ToolDefinition } from "@mcp-gateway/proto/mcp";
import type { Operations } from "../operations/operations.js";
import { requestContext } from "../pipeline/context.js";
import type { ToolPin } from "../store/tool-pins.js";

function toolDefinition(p: ToolPin): ToolDefinition {
  return {
    $typeName: "mcp.ToolDefinition",
    server: p.server,
    tool: p.tool,
    approvedDigest: p.approvedDigest,
    seenDigest: p.seenDigest,
    approved: p.approvedDigest === p.seenDigest,
    approvedBy: p.approvedBy,
    approvedAt: timestampFromMs(p.approvedAt),
    seenAt: timestampFromMs(p.seenAt),
    approvedDefinitionJson: p.approvedDefinition,
    seenDefinitionJson: p.seenDefinition,
  };
}

/**
 * The McpService handlers for gRPC, gRPC-Web and Connect: each one only hands
 * the decoded request and the interceptor's request context to its operation
 * (authentication ran in the interceptor; validation, decide → audit and the
 * action happen in the operation).
 */
export function createMcpService(ops: Operations): ServiceImpl<typeof McpService> {
  return {
    health: () => ops.health(),
    executeCommand: (req, ctx) => ops.executeCommand(requestContext(ctx), req),
    getTaskStatus: (req, ctx) => ops.getTaskStatus(requestContext(ctx), req),
    streamTaskOutput: (req, ctx) => ops.streamTaskOutput(requestContext(ctx), req, ctx.signal),
    cancelTask: (req, ctx) => ops.cancelTask(requestContext(ctx), req),
    readFile: (req, ctx) => ops.readFile(requestContext(ctx), req),
    writeFile: (req, ctx) => ops.writeFile(requestContext(ctx), req),
    deleteFile: (req, ctx) => ops.deleteFile(requestContext(ctx), req),
    listDirectory: (req, ctx) => ops.listDirectory(requestContext(ctx), req),
    listAuditEvents: (req, ctx) => ops.listAuditEvents(requestContext(ctx), req),
    listToolDefinitions: async (req, ctx) => ({
      tools: (await ops.listToolDefinitions(requestContext(ctx), req)).map(toolDefinition),
    }),
    approveToolDefinition: async (req, ctx) => ({
      tool: toolDefinition(await ops.approveToolDefinition(requestContext(ctx), req)),
    }),
    resetWorkspace: (req, ctx) => ops.resetWorkspace(requestContext(ctx), req),
  };
}
