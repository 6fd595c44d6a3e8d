/**
 * The store extension of guest storage (migration 7): the recorded storages (a whole-disk ext4
 * filesystem known by its UUID), the storage a VM image asks for, and the storage each instance
 * was placed on. Only kattach calls it.
 */
import { z } from "zod";
import type { Store } from "./store.ts";

/** One recorded storage. */
export const StorageRow = z.strictObject({
  name: z.string(),
  uuid: z.string(),
  label: z.string(),
  device: z.string(),
  model: z.string(),
  sizeBytes: z.number(),
  createdAt: z.string(),
});
export type StorageRow = z.infer<typeof StorageRow>;

function fromRow(r: Record<string, unknown>): StorageRow {
  return StorageRow.parse({
    name: r.name,
    uuid: r.uuid,
    label: r.label,
    device: r.device,
    model: r.model,
    sizeBytes: Number(r.size_bytes),
    createdAt: r.created_at,
  });
}

/** Every recorded storage, by name. */
export function listStorage(store: Store): StorageRow[] {
  return store.all("SELECT * FROM storage ORDER BY name").map(fromRow);
}

/** One recorded storage, or undefined. */
export function getStorage(store: Store, name: string): StorageRow | undefined {
  const r = store.get("SELECT * FROM storage WHERE name = ?", [name]);
  return r && fromRow(r);
}

/** Records a new storage. */
export function insertStorage(store: Store, row: StorageRow): void {
  store.run(
    "INSERT INTO storage (name, uuid, label, device, model, size_bytes, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
    [row.name, row.uuid, row.label, row.device, row.model, row.sizeBytes, row.createdAt],
  );
}

/** Notes where a storage's disk was found this time. */
export function setStorageDevice(store: Store, name: string, device: string): void {
  store.run("UPDATE storage SET device = ? WHERE name = ?", [device, name]);
}

/** Forgets a storage. */
export function deleteStorage(store: Store, name: string): void {
  store.run("DELETE FROM storage WHERE name = ?", [name]);
}

/** The storage an instance lives on, or null (the state directory; the appliance's data partition). */
export function instanceStorage(store: Store, instance: string): string | null {
  const r = store.get("SELECT storage FROM instance WHERE name = ?", [instance]);
  return r?.storage == null ? null : String(r.storage);
}

/** Places an instance on a storage (null: the state directory). */
export function setInstanceStorage(store: Store, instance: string, storage: string | null): void {
  store.run("UPDATE instance SET storage = ? WHERE name = ?", [storage, instance]);
}

/** The storage a VM image asks for, or null (the one with the most free space). */
export function vmImageStorage(store: Store, vmimage: string): string | null {
  const r = store.get("SELECT storage FROM vmimage WHERE name = ?", [vmimage]);
  return r?.storage == null ? null : String(r.storage);
}

/** Sets the storage a VM image asks for. */
export function setVmImageStorage(store: Store, vmimage: string, storage: string | null): void {
  store.run("UPDATE vmimage SET storage = ? WHERE name = ?", [storage, vmimage]);
}

/** Names of the instances living on a storage. */
export function instancesOn(store: Store, storage: string): string[] {
  return store.all("SELECT name FROM instance WHERE storage = ? ORDER BY name", [storage])
    .map((r) => String(r.name));
}

/** Names of the VM images asking for a storage. */
export function vmImagesOn(store: Store, storage: string): string[] {
  return store.all("SELECT name FROM vmimage WHERE storage = ? ORDER BY name", [storage])
    .map((r) => String(r.name));
}

/** Every placed instance's storage (of `names` only, when given), by instance name (one query). */
export function instanceStorages(store: Store, names: string[] | null = null): Map<string, string> {
  const rows = names === null
    ? store.all("SELECT name, storage FROM instance WHERE storage IS NOT NULL")
    : store.all(
      "SELECT name, storage FROM instance WHERE storage IS NOT NULL AND name IN (SELECT value FROM json_each(?))",
      [JSON.stringify(names)],
    );
  return new Map(rows.map((r) => [String(r.name), String(r.storage)]));
}

/** Every VM image's requested storage, by VM image name (one query for lists). */
export function vmImageStorages(store: Store): Map<string, string> {
  return new Map(
    store.all("SELECT name, storage FROM vmimage WHERE storage IS NOT NULL")
      .map((r) => [String(r.name), String(r.storage)]),
  );
}
