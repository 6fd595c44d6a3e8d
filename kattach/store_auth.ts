/**
 * The store extension of operator authentication (migration 4): the aqcli password hash with its
 * must-change flag ("" = the release's default password) and the authorized SSH keys.
 */
import type { Store } from "./store.ts";

/** A CLI user as stored. */
export interface AuthUserRow {
  name: string;
  /** An encoded scrypt hash, or "" while the release's default password is in force. */
  passwordHash: string;
  mustChange: boolean;
  updatedAt: string;
}

/** An authorized SSH key as stored. */
export interface AuthKeyRow {
  fingerprint: string;
  user: string;
  type: string;
  blob: string;
  comment: string;
  addedAt: string;
}

function now(): string {
  return new Date().toISOString();
}

/** The user with this name, or undefined. */
export function getAuthUser(store: Store, name: string): AuthUserRow | undefined {
  const r = store.get("SELECT * FROM auth_user WHERE name = ?", [name]);
  return r && {
    name: String(r.name),
    passwordHash: String(r.password_hash),
    mustChange: Number(r.must_change) === 1,
    updatedAt: String(r.updated_at),
  };
}

/** Stores a new password hash and clears the must-change flag. */
export function setPasswordHash(store: Store, name: string, hash: string): void {
  store.tx(() =>
    store.run(
      "UPDATE auth_user SET password_hash = ?, must_change = 0, updated_at = ? WHERE name = ?",
      [hash, now(), name],
    )
  );
}

/**
 * Puts the release's default password back in force for `name` (with its forced change); the
 * appliance does this at boot when the kernel command line asks (physical access is the recovery
 * path). Authorized keys stay.
 */
export function resetToDefaultPassword(store: Store, name: string): void {
  store.tx(() =>
    store.run(
      "UPDATE auth_user SET password_hash = '', must_change = 1, updated_at = ? WHERE name = ?",
      [now(), name],
    )
  );
}

/** The authorized keys of a user, oldest first. */
export function listAuthKeys(store: Store, user: string): AuthKeyRow[] {
  return store.all("SELECT * FROM auth_key WHERE user = ? ORDER BY added_at, fingerprint", [user])
    .map((r) => ({
      fingerprint: String(r.fingerprint),
      user: String(r.user),
      type: String(r.type),
      blob: String(r.blob),
      comment: String(r.comment),
      addedAt: String(r.added_at),
    }));
}

/** Adds an authorized key; false when the same key is already there. */
export function addAuthKey(store: Store, key: Omit<AuthKeyRow, "addedAt">): boolean {
  return store.tx(() => {
    if (store.get("SELECT 1 FROM auth_key WHERE fingerprint = ?", [key.fingerprint])) return false;
    store.run(
      "INSERT INTO auth_key (fingerprint, user, type, blob, comment, added_at) VALUES (?, ?, ?, ?, ?, ?)",
      [key.fingerprint, key.user, key.type, key.blob, key.comment, now()],
    );
    return true;
  });
}

/** Removes an authorized key by fingerprint. */
export function deleteAuthKey(store: Store, fingerprint: string): void {
  store.tx(() => store.run("DELETE FROM auth_key WHERE fingerprint = ?", [fingerprint]));
}
