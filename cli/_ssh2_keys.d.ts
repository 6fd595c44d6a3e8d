/** Types of npm:ssh2's lib/protocol/keyParser.js and lib/keygen.js (the functions used). */
import type { ParsedKey } from "./_ssh2.d.ts";

/** Parses a public or private key (OpenSSH, PEM). */
export function parseKey(
  data: string | Uint8Array,
  passphrase?: string,
): ParsedKey | ParsedKey[] | Error;

/** Generates a key pair in OpenSSH format. */
export function generateKeyPairSync(
  type: "ed25519" | "rsa" | "ecdsa",
  options?: { bits?: number; comment?: string },
): { private: string; public: string };
