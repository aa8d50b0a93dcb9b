#!/usr/bin/env python3
"""Independent verifier of an MCP Security Gateway audit chain (docs/security/audit-format.md).
usage: verify_chain.py <rows.jsonl from `mcp-gateway audit export --raw`> <audit key file> [<checkpoints.jsonl> <checkpoint.key.pub>]"""
import base64, hashlib, hmac, json, sys

rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
keys = {}
for line in open(sys.argv[2]):
    f = line.split()
    if not f or f[0].startswith("#"): continue
    s = base64.b64decode(f[0]); a = dict(x.split("=", 1) for x in f[1:])
    keys["k-" + hashlib.sha256(s).hexdigest()[:16]] = (s, int(a.get("validUntilSeq", 2**62)))
prev, heads = "0" * 64, {}
for r in rows:
    b = json.loads(r["body"]); k = keys.get(b.get("keyId"))
    ok = r["seq"] == len(heads) + 1 and r["prevHash"] == prev == b["prevHash"] and b["seq"] == r["seq"]
    ok = ok and k is not None and r["seq"] <= k[1] and hmac.compare_digest(r["hash"],
        hmac.new(k[0], (prev + "\n" + r["body"]).encode(), hashlib.sha256).hexdigest())
    if not ok: sys.exit(f"BROKEN at record {r['seq']}")
    prev = heads[r["seq"]] = r["hash"]
if len(sys.argv) > 4:
    from cryptography.hazmat.primitives.serialization import load_pem_public_key
    pub = load_pem_public_key(open(sys.argv[4], "rb").read())
    for c in (json.loads(l) for l in open(sys.argv[3]) if '"mcp-gateway.audit.checkpoint"' in l):
        msg = f"mcp-gateway-audit-checkpoint/v1\n{c['seq']}\n{c['head']}\n{c['time']}\n{c['edge']}\n{c['keyId']}"
        pub.verify(base64.b64decode(c["sig"]), msg.encode())  # raises InvalidSignature
        if heads.get(c["seq"]) != c["head"]: sys.exit(f"checkpoint at {c['seq']} does not match the chain")
print(f"OK {len(rows)} records, head {prev}")
