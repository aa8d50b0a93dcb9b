/**
 * Pinned MCP tool definitions of upstream servers ("rug pull" protection).
 * The first definition of a tool the gateway sees is pinned as approved; a
 * different definition served later is recorded as seen but not approved, and
 * the tool stays hidden and refused until an admin approves the new digest.
 */

/** What the store keeps per upstream tool. */
export interface ToolPin {
  server: string;
  tool: string;
  /** Digest of the approved definition ("sha256:<hex>"). */
  approvedDigest: string;
  /** The approved definition (JSON text), for diffs. */
  approvedDefinition: string;
  /** Digest of the definition the upstream served last. */
  seenDigest: string;
  /** That definition (JSON text). */
  seenDefinition: string;
  /** Who approved: "first-use" for the pin taken on first sight, else the admin's subject. */
  approvedBy: string;
  approvedAt: number;
  seenAt: number;
}

/** What observing a definition changed. */
export type PinChange =
  /** First sight: pinned as approved. */
  | "pinned"
  /** Same as last seen (approved or still pending). */
  | "unchanged"
  /** A definition not seen before that differs from the approved one: pending. */
  | "changed"
  /** The upstream went back to the approved definition. */
  | "restored";

/** True when the definition the upstream serves is the approved one. */
export function pinApproved(pin: ToolPin): boolean {
  return pin.seenDigest === pin.approvedDigest;
}

/** The pin after the upstream served `digest`, and what changed (pure; stores apply it). */
export function observePin(
  prev: ToolPin | undefined,
  server: string,
  tool: string,
  digest: string,
  definition: string,
  now: number,
): { pin: ToolPin; change: PinChange } {
  if (!prev) {
    return {
      pin: {
        server,
        tool,
        approvedDigest: digest,
        approvedDefinition: definition,
        seenDigest: digest,
        seenDefinition: definition,
        approvedBy: "first-use",
        approvedAt: now,
        seenAt: now,
      },
      change: "pinned",
    };
  }
  if (prev.seenDigest === digest) return { pin: prev, change: "unchanged" };
  const pin = { ...prev, seenDigest: digest, seenDefinition: definition, seenAt: now };
  return { pin, change: digest === prev.approvedDigest ? "restored" : "changed" };
}

/** The pin after an admin approved `digest`; undefined when that is not the definition last seen. */
export function approvePin(
  prev: ToolPin | undefined,
  digest: string,
  by: string,
  now: number,
): ToolPin | undefined {
  if (!prev || prev.seenDigest !== digest) return undefined;
  return {
    ...prev,
    approvedDigest: digest,
    approvedDefinition: prev.seenDefinition,
    approvedBy: by,
    approvedAt: now,
  };
}

/** Storage of tool pins (both stores implement it). */
export interface ToolPinStore {
  /** Records the definition an upstream serves now; resolves to the pin and what changed. */
  observeToolDefinition(
    server: string,
    tool: string,
    digest: string,
    definition: string,
    now: number,
  ): Promise<{ pin: ToolPin; change: PinChange }>;
  /** Approves the definition last seen if its digest is `digest`; undefined otherwise. */
  approveToolDefinition(
    server: string,
    tool: string,
    digest: string,
    by: string,
    now: number,
  ): Promise<ToolPin | undefined>;
  /** Pins, of one server or all, ordered by server and tool. */
  listToolPins(server?: string): Promise<ToolPin[]>;
}
