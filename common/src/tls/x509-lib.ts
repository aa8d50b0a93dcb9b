/**
 * The certificate generator of the dev PKI, loaded on demand by dev-pki.ts: only issuing a CA or
 * a leaf needs it (a start with current certificates reads them with node:crypto), and the
 * library with its ASN.1 stack is a large part of a process's start-up code.
 */
// @peculiar/x509 resolves its algorithm providers through tsyringe, which needs a Reflect
// metadata polyfill loaded before it.
import "reflect-metadata";

export {
  AuthorityKeyIdentifierExtension,
  BasicConstraintsExtension,
  ExtendedKeyUsage,
  ExtendedKeyUsageExtension,
  KeyUsageFlags,
  KeyUsagesExtension,
  SubjectAlternativeNameExtension,
  SubjectKeyIdentifierExtension,
  X509CertificateGenerator,
} from "@peculiar/x509";
