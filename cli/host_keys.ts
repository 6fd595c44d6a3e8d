/**
 * SSH host keys of the appliance: one ed25519 key, generated on first start and reused afterwards
 * so the fingerprint clients pinned stays valid across restarts.
 *
 * No RSA host key: the hardened policy serves ed25519 only (docs/security.md: with an RSA host
 * key ssh2 1.17 always adds SHA-1 `ssh-rsa` to the offer), so an RSA key was never served, and
 * generating RSA-3072 cost seconds of every first boot under TCG on the way to the SSH banner.
 * An `ssh_host_rsa_key` an earlier release left in the state directory is neither read nor removed.
 *
 * A key file whose content is not a usable ed25519 private key (malformed, as ssh2's keygen made
 * some before b4ffa9f; another key type; empty) is moved aside, never deleted, and a new key takes
 * its place: the appliance has no shell to mend the file, and without a key the sshd would stop at
 * every start. A file that cannot be read at all (an I/O error, permissions) is an error instead:
 * the key in it may be fine, so it is not replaced.
 */
import { type ParsedKey, utils } from "./_ssh2.ts";
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
  /** Set when this start replaced an unusable key file: where it is kept, and why. */
  replaced?: { keptAs: string; reason: string };
}

/** The suffix an unusable host key file is kept under: `.bad-` and the UTC time, e.g. `.bad-20261128T023015Z`. */
export const BAD_KEY_SUFFIX = ".bad-";

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

/** The private key of `type` in `text`, or why it is not a usable one (a string). */
function parseHostKey(text: string, type: string): ParsedKey | string {
  if (text.trim() === "") return "the file is empty";
  const parsed = utils.parseKey(text);
  if (parsed instanceof Error) return parsed.message;
  if (Array.isArray(parsed) || parsed.type !== type) return `not an ${type} private key`;
  if (parsed.isPrivateKey() !== true) return "a public key, not a private one";
  return parsed;
}

/** A parsed private host key with what clients see of it. */
function hostKeyOf(path: string, text: string, parsed: ParsedKey): HostKey {
  const type = parsed.type;
  const blob = parsed.getPublicSSH();
  return {
    type,
    path,
    privateKey: text,
    publicKey: `${type} ${Buffer.from(blob).toString("base64")} kaos-host`,
    fingerprint: fingerprintOf(blob),
  };
}

/**
 * Reads a host key file, or returns undefined when it does not exist. Any other failure (an I/O
 * error, permissions, a directory in its place) is a UserError naming the file and why: the key in
 * it may be good, so it is neither replaced nor moved.
 */
async function readKeyFile(path: string): Promise<string | undefined> {
  try {
    return await Deno.readTextFile(path);
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return undefined;
    throw new UserError(`Cannot read SSH host key ${path}: ${(err as Error).message}`, {
      hint: "the file is left as it is and no new key is made: check the disk and the file's " +
        "permissions",
      code: "unavailable",
      cause: err,
    });
  }
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

/** A UTC time as a file name takes it: `20261128T023015Z`. */
function fileStamp(at: Date): string {
  return at.toISOString().replace(/\.\d+Z$/, "Z").replaceAll(/[-:]/g, "");
}

/**
 * Moves the unusable key file `path` (whose content was `text`) aside to `<path>.bad-<UTC time>`
 * (`-2`, `-3`… when that name is taken: a kept key is never overwritten) and returns that name;
 * undefined when `path` no longer holds `text` (another start moved or replaced it).
 */
async function moveAside(path: string, text: string, at: Date): Promise<string | undefined> {
  const base = `${path}${BAD_KEY_SUFFIX}${fileStamp(at)}`;
  for (let n = 1;; n++) {
    const aside = n === 1 ? base : `${base}-${n}`;
    try {
      await Deno.link(path, aside); // fails rather than overwrite a kept key
    } catch (err) {
      if (err instanceof Deno.errors.AlreadyExists) continue;
      if (err instanceof Deno.errors.NotFound) return undefined;
      throw err;
    }
    if ((await readIfExists(aside)) !== text) {
      await Deno.remove(aside).catch(() => {}); // not the file that was read: leave it alone
      return undefined;
    }
    await Deno.remove(path).catch((err) => {
      if (!(err instanceof Deno.errors.NotFound)) throw err;
    });
    return aside;
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
 * are missing. The directory is created (mode 0700) if needed. A key file whose content is not a
 * usable key is moved aside (`<file>.bad-<UTC time>`, kept) and replaced by a new key; the key
 * says so (`replaced`), for the caller to log. A file that cannot be read is an error (a UserError
 * naming it; nothing is changed). `now` gives the time for the kept file's name (tests).
 */
export async function loadOrCreateHostKeys(
  dir: string,
  options: { now?: () => Date } = {},
): Promise<HostKey[]> {
  await Deno.mkdir(dir, { recursive: true, mode: 0o700 });
  const keys: HostKey[] = [];
  for (const spec of KEY_SPECS) {
    const path = `${dir}/${spec.file}`;
    let replaced: HostKey["replaced"];
    let key: HostKey | undefined;
    // A few rounds: another start may move or make the file between this one's steps.
    for (let round = 0; round < 5 && !key; round++) {
      let text = await readKeyFile(path);
      if (text === undefined) {
        const fresh = spec.generate();
        text = (await createExclusive(path, fresh)) ? fresh : await readKeyFile(path);
        if (text === undefined) continue;
      }
      const parsed = parseHostKey(text, spec.type);
      if (typeof parsed !== "string") {
        key = hostKeyOf(path, text, parsed);
        break;
      }
      const reason = parsed;
      const keptAs = await moveAside(path, text, options.now?.() ?? new Date());
      if (keptAs !== undefined) replaced = { keptAs, reason };
    }
    if (!key) {
      throw new UserError(`Cannot use SSH host key ${path}: it changed under this start`, {
        hint: "another process writes the host keys: only kattach's sshd should",
        code: "conflict",
      });
    }
    await writePublicKey(`${path}.pub`, key.publicKey);
    keys.push(replaced ? { ...key, replaced } : key);
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
