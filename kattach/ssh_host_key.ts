/**
 * What `system status` (and the menus' banner) says of the SSH host key: its fingerprint, and
 * when the sshd replaced an unusable key file (cli/host_keys.ts keeps it as
 * `ssh_host_ed25519_key.bad-<UTC time>` in `STATE/ssh`), so an operator whose ssh client warns
 * that the host key changed learns why, and which fingerprint the new key has.
 */
import { nodeBuffer, nodeCrypto } from "../lib/lazy_crypto.ts";

/** The host key file, as cli/host_keys.ts names it. */
const KEY_FILE = "ssh_host_ed25519_key";
/** The suffix of a kept unusable key file, as cli/host_keys.ts writes it, with its UTC time. */
const KEPT = new RegExp(`^${KEY_FILE}\\.bad-(\\d{8}T\\d{6}Z)(-\\d+)?$`);
/** How long after a replacement `system status` lists it among its warnings. */
export const REPLACED_WARNING_DAYS = 7;

/** The SSH host key as `system status` reports it. */
export interface SshHostKeyStatus {
  /** "SHA256:…" of the key the sshd serves (its .pub), or null when there is none yet. */
  fingerprint: string | null;
  /** The latest replacement of an unusable key file, or null when there was none. */
  replaced: { at: string; keptAs: string } | null;
  /** The warning while the replacement is recent (REPLACED_WARNING_DAYS), else null. */
  notice: string | null;
}

/** `20261128T023015Z` → `2026-11-28T02:30:15Z`. */
function isoOf(stamp: string): string {
  const m = /^(\d{4})(\d\d)(\d\d)T(\d\d)(\d\d)(\d\d)Z$/.exec(stamp)!;
  return `${m[1]}-${m[2]}-${m[3]}T${m[4]}:${m[5]}:${m[6]}Z`;
}

/** Reads the host key's state in `STATE/ssh`; never throws (a missing directory: no key yet). */
export async function sshHostKeyStatus(
  stateDir: string,
  now: number = Date.now(),
): Promise<SshHostKeyStatus> {
  const dir = `${stateDir}/ssh`;
  let fingerprint: string | null = null;
  try {
    // "ssh-ed25519 AAAA… kaos-host": the SHA256 of the blob, as ssh-keygen -l prints it.
    const blob = (await Deno.readTextFile(`${dir}/${KEY_FILE}.pub`)).trim().split(/\s+/)[1];
    if (blob && /^[A-Za-z0-9+/]+={0,2}$/.test(blob)) {
      const digest = nodeCrypto().createHash("sha256").update(nodeBuffer().from(blob, "base64"));
      fingerprint = `SHA256:${digest.digest("base64").replace(/=+$/, "")}`;
    }
  } catch { /* no key yet, or a .pub the sshd writes again at its next start */ }
  let latest: { stamp: string; name: string } | undefined;
  try {
    for await (const e of Deno.readDir(dir)) {
      const m = KEPT.exec(e.name);
      if (!m) continue;
      const key = { stamp: `${m[1]}${(m[2] ?? "").padStart(8, " ")}`, name: e.name };
      if (!latest || key.stamp > latest.stamp) latest = key;
    }
  } catch { /* no directory: the sshd has not started here */ }
  if (!latest) return { fingerprint, replaced: null, notice: null };
  const at = isoOf(latest.stamp.slice(0, 16));
  const replaced = { at, keptAs: `${dir}/${latest.name}` };
  const recent = now - Date.parse(at) < REPLACED_WARNING_DAYS * 86_400_000;
  const notice = recent
    ? `the SSH host key was replaced at ${at}: the key file before could not be used (kept as ` +
      `${replaced.keptAs}; kattach's log says why). SSH clients that knew the old key warn that ` +
      `the host key changed; the new key's fingerprint is ${fingerprint ?? "not known yet"}`
    : null;
  return { fingerprint, replaced, notice };
}
