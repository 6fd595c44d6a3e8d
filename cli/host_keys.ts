/**
 * SSH host keys of the appliance: one ed25519 key, generated on first start and reused afterwards
 * so the fingerprint clients pinned stays valid across restarts.
 *
 * No RSA host key: the hardened policy serves ed25519 only (docs/security.md: with an RSA host
 * key ssh2 1.17 always adds SHA-1 `ssh-rsa` to the offer), so an RSA key was never served, and
 * generating RSA-3072 cost seconds of every first boot under TCG on the way to the SSH banner.
 * An `ssh_host_rsa_key` an earlier release left on the data partition is neither read nor removed.
 */
import { utils } from "./_ssh2.ts";
import { Buffer } from "node:buffer";
import { createHash } from "node:crypto";
import { UserError } from "../lib/errors.ts";

/** One host key: the private key in OpenSSH format and what clients see of it. */
export interface HostKey {
  /** The key type, "ssh-ed25519". */
  type: string;
  /** Where the private key lives. */
  path: string;
  /** The private key, OpenSSH format ("-----BEGIN OPENSSH PRIVATE KEY-----"). */
  privateKey: string;
  /** The public key as one OpenSSH line, e.g. "ssh-ed25519 AAAA... kaos-host". */
  publicKey: string;
  /** The fingerprint OpenSSH prints, e.g. "SHA256:Abc...". */
  fingerprint: string;
}

const KEY_SPECS = [
  { file: "ssh_host_ed25519_key", type: "ssh-ed25519", generate: () => generateHostKey() },
] as const;

/** An ed25519 key pair from ssh2's keygen (node:crypto underneath), OpenSSH format. */
function ssh2Keygen(): string {
  return utils.generateKeyPairSync("ed25519", { comment: "kaos-host" }).private;
}

/**
 * A new ed25519 host key, OpenSSH format, one that parses. ssh2's keygen makes a malformed key
 * now and then (9 of 3,000 here): a public key whose first byte is 0 is written 31 bytes long,
 * and ssh2's own parser refuses it ("Malformed OpenSSH private key"). Saved, such a key stopped
 * the sshd at every start of the appliance (a clean-clone CI run's first boot under OVMF). It is
 * made again until one parses; `make` is the keygen (tests give their own).
 */
export function generateHostKey(make: () => string = ssh2Keygen, tries = 100): string {
  for (let i = 0; i < tries; i++) {
    const text = make();
    const parsed = utils.parseKey(text);
    if (!(parsed instanceof Error) && !Array.isArray(parsed) && parsed.type === "ssh-ed25519") {
      return text;
    }
  }
  throw new Error(`no usable ed25519 host key in ${tries} tries of the keygen`);
}

/** The OpenSSH SHA256 fingerprint of a public key blob. */
export function fingerprintOf(publicBlob: Uint8Array): string {
  const digest = createHash("sha256").update(publicBlob).digest("base64");
  return `SHA256:${digest.replace(/=+$/, "")}`;
}

/** Parses a private host key, or throws a UserError naming the file. */
function parseHostKey(path: string, text: string, type: string): HostKey {
  const parsed = utils.parseKey(text);
  if (parsed instanceof Error || Array.isArray(parsed) || parsed.type !== type) {
    const why = parsed instanceof Error ? parsed.message : `not an ${type} private key`;
    throw new UserError(`Cannot use SSH host key ${path}: ${why}`, {
      hint: "Remove the file to have a new host key generated (clients will see a new fingerprint)",
      code: "invalid",
    });
  }
  const blob = parsed.getPublicSSH();
  return {
    type,
    path,
    privateKey: text,
    publicKey: `${type} ${Buffer.from(blob).toString("base64")} kaos-host`,
    fingerprint: fingerprintOf(blob),
  };
}

/** Reads a file, or returns undefined when it does not exist. */
async function readIfExists(path: string): Promise<string | undefined> {
  try {
    return await Deno.readTextFile(path);
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return undefined;
    throw err;
  }
}

/**
 * Creates `path` with `text` (mode 0600) atomically and only if it does not exist yet: writes a
 * temporary file, then hard-links it into place (which fails if another process won the race).
 * Returns false when the file already existed.
 */
async function createExclusive(path: string, text: string): Promise<boolean> {
  const tmp = `${path}.tmp-${Deno.pid}-${crypto.randomUUID()}`;
  try {
    const file = await Deno.open(tmp, { write: true, createNew: true, mode: 0o600 });
    try {
      await file.write(new TextEncoder().encode(text));
      await file.sync();
    } finally {
      file.close();
    }
    await Deno.chmod(tmp, 0o600);
    try {
      await Deno.link(tmp, path);
      return true;
    } catch (err) {
      if (err instanceof Deno.errors.AlreadyExists) return false;
      throw err;
    }
  } finally {
    await Deno.remove(tmp).catch(() => {});
  }
}

/**
 * Loads the host keys (ed25519) from `dir`, generating (and saving, mode 0600) the ones that
 * are missing. The directory is created (mode 0700) if needed. A present but unusable key file is
 * an error (it is never overwritten).
 */
export async function loadOrCreateHostKeys(dir: string): Promise<HostKey[]> {
  await Deno.mkdir(dir, { recursive: true, mode: 0o700 });
  const keys: HostKey[] = [];
  for (const spec of KEY_SPECS) {
    const path = `${dir}/${spec.file}`;
    let text = await readIfExists(path);
    if (text === undefined) {
      const fresh = spec.generate();
      text = (await createExclusive(path, fresh)) ? fresh : await Deno.readTextFile(path);
    }
    const key = parseHostKey(path, text, spec.type);
    await writePublicKey(`${path}.pub`, key.publicKey);
    keys.push(key);
  }
  return keys;
}

/** Writes the .pub beside a private key (for operators), atomically, when it differs. */
async function writePublicKey(path: string, line: string): Promise<void> {
  if ((await readIfExists(path))?.trim() === line) return;
  const tmp = `${path}.tmp-${Deno.pid}-${crypto.randomUUID()}`;
  await Deno.writeTextFile(tmp, `${line}\n`, { mode: 0o644 });
  await Deno.rename(tmp, path);
}
