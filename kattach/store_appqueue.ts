/**
 * The store extension of AppQueues (migration 2): configured queues, where each installed module
 * came from, the host's subscription key and per-instance health; the publisher key each module
 * name is bound to (migration 8). Only kattach calls it.
 */
import type { SQLInputValue } from "node:sqlite";
import type { Module } from "../ipc/schemas.ts";
import type { Store } from "./store.ts";

/** A configured AppQueue as stored. */
export interface QueueRow {
  name: string;
  url: string;
  /** Base64 raw Ed25519 key; "" while not configured. */
  publicKey: string;
  /** The queue wants the host's subscription key. */
  subscription: boolean;
  /** The highest index serial seen (rollback protection). */
  lastSerial: number;
}

/** Where an installed module came from. */
export interface ModuleOrigin {
  /** `queue:NAME`, `bundle` or `dir`. */
  source: string;
  publicKey: string;
  releaseNotes: string;
}

/** One health record of one module inside one instance. */
export interface HealthRow {
  instance: string;
  module: string;
  status: "starting" | "ready" | "failed";
  detail: string;
  checkedAt: string;
}

const SUBSCRIPTION_KEY = "subscription.key";

function queueFromRow(r: Record<string, SQLInputValue>): QueueRow {
  return {
    name: String(r.name),
    url: String(r.url),
    publicKey: String(r.public_key),
    subscription: Number(r.subscription) === 1,
    lastSerial: Number(r.last_serial),
  };
}

/** All configured queues by name. */
export function listQueues(store: Store): QueueRow[] {
  return store.all("SELECT * FROM appqueue ORDER BY name").map(queueFromRow);
}

/** The queue with this name, or undefined. */
export function getQueue(store: Store, name: string): QueueRow | undefined {
  const row = store.get("SELECT * FROM appqueue WHERE name = ?", [name]);
  return row && queueFromRow(row);
}

/** Adds a queue. */
export function insertQueue(store: Store, q: Omit<QueueRow, "lastSerial">): void {
  store.run(
    "INSERT INTO appqueue (name, url, public_key, subscription, last_serial, created_at) VALUES (?, ?, ?, ?, 0, ?)",
    [q.name, q.url, q.publicKey, q.subscription ? 1 : 0, new Date().toISOString()],
  );
}

/** Changes a queue; a new URL or key forgets the serial seen so far. */
export function updateQueue(
  store: Store,
  name: string,
  change: { url?: string; publicKey?: string; subscription?: boolean },
): void {
  const q = getQueue(store, name);
  if (!q) return;
  const url = change.url ?? q.url;
  const key = change.publicKey ?? q.publicKey;
  const reset = url !== q.url || key !== q.publicKey;
  store.run(
    "UPDATE appqueue SET url = ?, public_key = ?, subscription = ?, last_serial = ? WHERE name = ?",
    [url, key, (change.subscription ?? q.subscription) ? 1 : 0, reset ? 0 : q.lastSerial, name],
  );
}

/** Records the serial of a verified index. */
export function setQueueSerial(store: Store, name: string, serial: number): void {
  store.run("UPDATE appqueue SET last_serial = ? WHERE name = ?", [serial, name]);
}

/** Deletes a queue. */
export function deleteQueue(store: Store, name: string): void {
  store.run("DELETE FROM appqueue WHERE name = ?", [name]);
}

/** Names of installed modules that came from a queue. */
export function queueModules(store: Store, name: string): string[] {
  return store.all("SELECT module FROM module_origin WHERE source = ? ORDER BY module", [
    `queue:${name}`,
  ]).map((r) => String(r.module));
}

/** Records (or replaces) where a module came from. */
export function setModuleOrigin(store: Store, module: string, o: ModuleOrigin): void {
  store.run(
    "INSERT INTO module_origin (module, source, public_key, release_notes) VALUES (?, ?, ?, ?) ON CONFLICT (module) DO UPDATE SET source = excluded.source, public_key = excluded.public_key, release_notes = excluded.release_notes",
    [module, o.source, o.publicKey, o.releaseNotes],
  );
}

/** Where a module came from, or undefined (imported from a directory before migration 2). */
export function getModuleOrigin(store: Store, module: string): ModuleOrigin | undefined {
  const r = store.get("SELECT * FROM module_origin WHERE module = ?", [module]);
  return r && {
    source: String(r.source),
    publicKey: String(r.public_key),
    releaseNotes: String(r.release_notes),
  };
}

/** The key a module name is bound to (the first that signed it), or undefined. */
export function getPublisher(store: Store, module: string): string | undefined {
  const r = store.get("SELECT public_key FROM module_publisher WHERE module = ?", [module]);
  return r && String(r.public_key);
}

/** Binds a module name to a publisher key (replacing an earlier binding); "" unbinds it. */
export function setPublisher(store: Store, module: string, publicKey: string): void {
  if (publicKey === "") {
    store.run("DELETE FROM module_publisher WHERE module = ?", [module]);
    return;
  }
  store.run(
    "INSERT INTO module_publisher (module, public_key, bound_at) VALUES (?, ?, ?) ON CONFLICT (module) DO UPDATE SET public_key = excluded.public_key, bound_at = excluded.bound_at",
    [module, publicKey, new Date().toISOString()],
  );
}

/**
 * Replaces an installed module's record in place (an update): version, description, climod,
 * appmgr and files. VM images and configuration groups keep pointing at it by name.
 */
export function replaceModule(store: Store, m: Omit<Module, "installedAt">): void {
  store.run(
    "UPDATE module SET version = ?, kind = ?, description = ?, image_format = ?, dir = ?, climod = ?, appmgr = ?, installed_at = ? WHERE name = ?",
    [
      m.version,
      m.kind,
      m.description,
      m.imageFormat,
      m.dir,
      JSON.stringify(m.climod),
      JSON.stringify(m.appmgr),
      new Date().toISOString(),
      m.name,
    ],
  );
  store.setModuleFiles(m.name, m.files);
}

/** The host's subscription key, or undefined. */
export function getSubscriptionKey(store: Store): string | undefined {
  const v = store.getSetting(SUBSCRIPTION_KEY);
  return v === undefined || v === "" ? undefined : v;
}

/** Sets (or with "" clears) the host's subscription key. */
export function setSubscriptionKey(store: Store, key: string): void {
  if (key === "") store.run("DELETE FROM setting WHERE key = ?", [SUBSCRIPTION_KEY]);
  else store.setSetting(SUBSCRIPTION_KEY, key);
}

/** Records the health of one module in one instance (called by the instance supervisor). */
export function recordHealth(store: Store, h: Omit<HealthRow, "checkedAt">): void {
  store.run(
    "INSERT INTO instance_health (instance, module, status, detail, checked_at) VALUES (?, ?, ?, ?, ?) ON CONFLICT (instance, module) DO UPDATE SET status = excluded.status, detail = excluded.detail, checked_at = excluded.checked_at",
    [h.instance, h.module, h.status, h.detail, new Date().toISOString()],
  );
}

/** The health records of an instance, by module. */
export function instanceHealth(store: Store, instance: string): HealthRow[] {
  return store.all("SELECT * FROM instance_health WHERE instance = ? ORDER BY module", [instance])
    .map((r) => ({
      instance: String(r.instance),
      module: String(r.module),
      status: r.status as HealthRow["status"],
      detail: String(r.detail),
      checkedAt: String(r.checked_at),
    }));
}
