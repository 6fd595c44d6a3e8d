/**
 * Ed25519 signatures (WebCrypto) for AppQueue indexes and module bundles. Public keys travel as
 * base64 of the raw 32 bytes; a signed document is an envelope holding the exact payload text and
 * a signature over its UTF-8 bytes, so no JSON canonicalisation is needed.
 */
import { z } from "zod";
import { describeIssues, UserError } from "../lib/errors.ts";

const BASE64 = /^[A-Za-z0-9+/]+={0,2}$/;

/** A public key: base64 of a raw 32-byte Ed25519 key. */
export const PublicKey = z.string().regex(BASE64, "a public key is base64").refine(
  (s) => {
    try {
      return decodeBase64(s).length === 32;
    } catch {
      return false;
    }
  },
  "an Ed25519 public key is 32 bytes (44 base64 characters)",
);

/** A private key file as `appqueue keygen` writes it. */
export const KeyFile = z.strictObject({
  format: z.literal("kaos-appqueue-key/1"),
  publicKey: PublicKey,
  /** PKCS#8 of the Ed25519 private key, base64. */
  privateKey: z.string().regex(BASE64),
});
export type KeyFile = z.infer<typeof KeyFile>;

/** A signed document: the payload text, the signer's public key and the signature. */
export const SignedEnvelope = z.strictObject({
  format: z.literal("kaos-signed/1"),
  publicKey: PublicKey,
  signature: z.string().regex(BASE64),
  payload: z.string().max(16 * 1024 * 1024),
});
export type SignedEnvelope = z.infer<typeof SignedEnvelope>;

/** Base64 (standard alphabet, padded) of bytes. */
export function encodeBase64(bytes: Uint8Array): string {
  let s = "";
  for (let i = 0; i < bytes.length; i += 0x8000) {
    s += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  }
  return btoa(s);
}

/** Bytes of a base64 string; throws on bad input. */
export function decodeBase64(text: string): Uint8Array<ArrayBuffer> {
  const s = atob(text);
  const out = new Uint8Array(s.length);
  for (let i = 0; i < s.length; i++) out[i] = s.charCodeAt(i);
  return out;
}

/** Generates a fresh Ed25519 key pair as a key file. */
export async function generateKeyFile(): Promise<KeyFile> {
  const pair = await crypto.subtle.generateKey({ name: "Ed25519" }, true, [
    "sign",
    "verify",
  ]) as CryptoKeyPair;
  const raw = new Uint8Array(await crypto.subtle.exportKey("raw", pair.publicKey));
  const pkcs8 = new Uint8Array(await crypto.subtle.exportKey("pkcs8", pair.privateKey));
  return {
    format: "kaos-appqueue-key/1",
    publicKey: encodeBase64(raw),
    privateKey: encodeBase64(pkcs8),
  };
}

/** Signs `payload` (its UTF-8 bytes) and returns the envelope. */
export async function signPayload(key: KeyFile, payload: string): Promise<SignedEnvelope> {
  const priv = await crypto.subtle.importKey(
    "pkcs8",
    decodeBase64(key.privateKey),
    { name: "Ed25519" },
    false,
    ["sign"],
  );
  const sig = await crypto.subtle.sign("Ed25519", priv, new TextEncoder().encode(payload));
  return {
    format: "kaos-signed/1",
    publicKey: key.publicKey,
    signature: encodeBase64(new Uint8Array(sig)),
    payload,
  };
}

/** True when `signature` (base64) is `publicKey`'s signature of `data`. */
export async function verifySignature(
  publicKey: string,
  data: Uint8Array,
  signature: string,
): Promise<boolean> {
  let sig: Uint8Array<ArrayBuffer>;
  try {
    sig = decodeBase64(signature);
  } catch {
    return false;
  }
  if (sig.length !== 64) return false;
  const key = await crypto.subtle.importKey(
    "raw",
    decodeBase64(publicKey),
    {
      name: "Ed25519",
    },
    false,
    ["verify"],
  );
  return await crypto.subtle.verify("Ed25519", key, sig, new Uint8Array(data));
}

/** Options of {@linkcode openEnvelope}. */
export interface OpenOptions {
  /** Keys trusted to sign this document (base64 raw). */
  trusted: string[];
  /** What the document is, for messages ("the index of queue community"). */
  label: string;
}

/**
 * Parses envelope bytes, checks the signature against the trusted keys and returns the payload
 * text and the key that signed it. A UserError names what failed.
 */
export async function openEnvelope(
  bytes: Uint8Array,
  options: OpenOptions,
): Promise<{ payload: string; publicKey: string }> {
  const { label } = options;
  let raw: unknown;
  try {
    raw = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(bytes));
  } catch (cause) {
    throw new UserError(`Cannot verify ${label}: it is not a signed JSON document`, {
      hint: "the server sent something else; check the URL",
      code: "bad-signature",
      cause,
    });
  }
  const env = SignedEnvelope.safeParse(raw);
  if (!env.success) {
    throw new UserError(
      `Cannot verify ${label}: malformed signature envelope (${describeIssues(env.error.issues)})`,
      { code: "bad-signature" },
    );
  }
  const { publicKey, signature, payload } = env.data;
  if (!options.trusted.includes(publicKey)) {
    throw new UserError(
      `Cannot verify ${label}: it is signed by an untrusted key ${publicKey.slice(0, 12)}…`,
      {
        hint: "compare the queue's public key (`appqueue list`) with the one its publisher gives",
        code: "bad-signature",
      },
    );
  }
  if (!await verifySignature(publicKey, new TextEncoder().encode(payload), signature)) {
    throw new UserError(`Cannot verify ${label}: the signature does not match its content`, {
      hint: "the document was altered after signing; nothing was installed",
      code: "bad-signature",
    });
  }
  return { payload, publicKey };
}
