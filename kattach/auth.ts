/**
 * Operator authentication for the AppQueue CLI: the release's default password, the password
 * policy, scrypt password hashes (node:crypto, loaded at first use: lib/lazy_crypto.ts; random
 * salt, constant-time compare) and OpenSSH authorized-key lines. Pure functions; the rows live in kattach/store_auth.ts.
 */
import type { Buffer } from "node:buffer";
import { nodeBuffer, nodeCrypto } from "../lib/lazy_crypto.ts";
import { UserError } from "../lib/errors.ts";
import { KAOS_VERSION } from "./actions/system.ts";

/** The only operator account of the AppQueue CLI. */
export const CLI_USER = "aqcli";

/** The release's default password: works until it is changed, and forces that change first. */
export const DEFAULT_PASSWORD = `kaos-${KAOS_VERSION}`;

/** Shortest password accepted. */
export const MIN_PASSWORD_LENGTH = 8;

/** Longest password accepted (scrypt works on any length; this bounds the work per login). */
export const MAX_PASSWORD_LENGTH = 256;

const SCRYPT = { N: 16384, r: 8, p: 1, keyLength: 32, saltLength: 16 } as const;

/** Throws a UserError when `password` does not meet the policy. */
export function checkPasswordPolicy(password: string, options: { user?: string } = {}): void {
  const fail = (why: string, hint: string) => {
    throw new UserError(`Cannot set the password: ${why}`, { hint, code: "invalid" });
  };
  if (password.length < MIN_PASSWORD_LENGTH) {
    fail(
      `it is shorter than ${MIN_PASSWORD_LENGTH} characters`,
      `use at least ${MIN_PASSWORD_LENGTH} characters`,
    );
  }
  if (password.length > MAX_PASSWORD_LENGTH) {
    fail(`it is longer than ${MAX_PASSWORD_LENGTH} characters`, "use a shorter passphrase");
  }
  // deno-lint-ignore no-control-regex
  if (/[\x00-\x1f\x7f]/.test(password)) {
    fail("it contains control characters", "use printable characters only");
  }
  if (password === DEFAULT_PASSWORD) {
    fail("it is the release's default password", "choose a password of your own");
  }
  if (options.user && password.toLowerCase() === options.user.toLowerCase()) {
    fail("it is the user name", "choose a password of your own");
  }
}

function scryptAsync(password: string, salt: Uint8Array, n: number, r: number, p: number) {
  return new Promise<Buffer>((resolve, reject) => {
    nodeCrypto().scrypt(
      password.normalize("NFC"),
      salt,
      SCRYPT.keyLength,
      { N: n, r, p, maxmem: 256 * n * r + 1024 * 1024 },
      (err, key) => err ? reject(err) : resolve(key),
    );
  });
}

/** Hashes a password: `scrypt$N$r$p$SALT$HASH` (base64 salt and hash). */
export async function hashPassword(password: string): Promise<string> {
  const salt = nodeCrypto().randomBytes(SCRYPT.saltLength);
  const key = await scryptAsync(password, salt, SCRYPT.N, SCRYPT.r, SCRYPT.p);
  return ["scrypt", SCRYPT.N, SCRYPT.r, SCRYPT.p, salt.toString("base64"), key.toString("base64")]
    .join("$");
}

/** True when `password` matches an encoded hash; false for a malformed hash. */
export async function verifyPassword(password: string, encoded: string): Promise<boolean> {
  const parts = encoded.split("$");
  if (parts.length !== 6 || parts[0] !== "scrypt") return false;
  const [n, r, p] = parts.slice(1, 4).map(Number);
  if (![n, r, p].every(Number.isSafeInteger) || n < 2 || n > 2 ** 20 || r > 32 || p > 16) {
    return false;
  }
  const salt = nodeBuffer().from(parts[4], "base64");
  const want = nodeBuffer().from(parts[5], "base64");
  const got = await scryptAsync(password, salt, n, r, p);
  return want.length === got.length && nodeCrypto().timingSafeEqual(want, got);
}

/** Constant-time comparison with the release's default password. */
export function isDefaultPassword(password: string): boolean {
  const a = nodeCrypto().createHash("sha256").update(password).digest();
  const b = nodeCrypto().createHash("sha256").update(DEFAULT_PASSWORD).digest();
  return nodeCrypto().timingSafeEqual(a, b);
}

/** Key types accepted in authorized keys. */
export const KEY_TYPES = [
  "ssh-ed25519",
  "ssh-rsa",
  "ecdsa-sha2-nistp256",
  "ecdsa-sha2-nistp384",
  "ecdsa-sha2-nistp521",
] as const;

/** An OpenSSH public key, parsed. */
export interface PublicKey {
  type: string;
  /** The base64 key blob. */
  blob: string;
  comment: string;
  /** "SHA256:…" as ssh-keygen -l prints it. */
  fingerprint: string;
}

/** Parses one OpenSSH public key line ("ssh-ed25519 AAAA… comment"); a UserError otherwise. */
export function parsePublicKey(line: string): PublicKey {
  const bad = (why: string) =>
    new UserError(`Cannot add the SSH key: ${why}`, {
      hint: "paste one line of a .pub file, e.g. ssh-ed25519 AAAAC3Nza… you@laptop",
      code: "invalid",
    });
  const text = line.trim();
  if (text.length > 16384) throw bad("it is too long");
  // deno-lint-ignore no-control-regex
  if (/[\x00-\x1f\x7f]/.test(text)) throw bad("it spans several lines or has control characters");
  const [type, blob, ...rest] = text.split(/\s+/);
  if (!type || !blob) throw bad("it is not an OpenSSH public key line");
  if (!(KEY_TYPES as readonly string[]).includes(type)) {
    throw bad(
      `key type ${JSON.stringify(type.slice(0, 40))} is not one of ${KEY_TYPES.join(", ")}`,
    );
  }
  if (!/^[A-Za-z0-9+/]+={0,2}$/.test(blob) || blob.length % 4 !== 0) {
    throw bad("the key is not valid base64");
  }
  const bytes = nodeBuffer().from(blob, "base64");
  if (bytes.length < 4) throw bad("the key is truncated");
  const nameLength = bytes.readUInt32BE(0);
  if (nameLength > bytes.length - 4 || bytes.subarray(4, 4 + nameLength).toString() !== type) {
    throw bad(`the key's data does not match its type ${type}`);
  }
  const fingerprint = "SHA256:" +
    nodeCrypto().createHash("sha256").update(bytes).digest("base64").replace(/=+$/, "");
  return { type, blob, comment: rest.join(" ").slice(0, 200), fingerprint };
}

/** The OpenSSH line of a key. */
export function publicKeyLine(k: { type: string; blob: string; comment: string }): string {
  return `${k.type} ${k.blob}${k.comment ? ` ${k.comment}` : ""}`;
}
