/**
 * TLS for the edge ↔ runner link: dev PKI, material loading and reloading,
 * SPIFFE-style identities. See docs/security/trust-model.md.
 */
export {
  type DevPki,
  DevPkiError,
  type DevPkiLeaf,
  type DevPkiOptions,
  ensureDevPki,
} from "./dev-pki.js";
export {
  type CheckRunnerIdentityOptions,
  checkRunnerIdentity,
  edgeIdentity,
  isAllowedPeer,
  monitorIdentity,
  parseSubjectAltName,
  peerIdentities,
  runnerIdentity,
  TRUST_DOMAIN,
} from "./identity.js";
export {
  loadTlsMaterial,
  mtlsServerOptions,
  type TlsFiles,
  type TlsMaterial,
  TlsMaterialError,
  type TlsMaterialErrorCode,
  type WatchTlsMaterialOptions,
  watchTlsMaterial,
} from "./material.js";
