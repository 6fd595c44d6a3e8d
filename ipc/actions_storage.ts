/**
 * Guest storage actions (local disks made into KaOS storage, where overlays and instance runtime
 * files live) and kattach's own log. Spread into the registry in actions.ts.
 */
import { z } from "zod";
import { lazySchema } from "../lib/lazy_schema.ts";

/** A storage name: short, because it goes into the ext4 label `KAOS-<name>` (16 bytes). */
export const StorageName = lazySchema(() =>
  z.string().regex(
    /^[a-z][a-z0-9-]{0,10}$/,
    "storage names are 1-11 lower-case letters, digits or '-', starting with a letter",
  )
);

/** A disk device node as the operator names it (`/dev/vdb` or `vdb`). */
export const DiskName = lazySchema(() =>
  z.string().regex(
    /^(\/dev\/)?[a-z][a-z0-9]{1,31}$/,
    "disks are named like /dev/vdb or vdb (see `storage list`)",
  )
);

/** One local disk as `storage list` shows it. */
export const DiskInfo = lazySchema(() =>
  z.strictObject({
    device: z.string(),
    model: z.string(),
    sizeBytes: z.number(),
    /** The filesystem or partition table label(s) found on it ("" when none). */
    label: z.string(),
    /** Who uses it ("" when free): a mount, a partition table, the boot stick, a KaOS storage. */
    inUseBy: z.string(),
    /** True when `storage init` would take it. */
    candidate: z.boolean(),
  })
);
export type DiskInfo = z.infer<typeof DiskInfo>;

/** One recorded KaOS storage. */
export const StorageInfo = lazySchema(() =>
  z.strictObject({
    name: StorageName,
    uuid: z.string(),
    label: z.string(),
    /** Where the disk was last seen. */
    device: z.string(),
    model: z.string(),
    sizeBytes: z.number(),
    /** "mounted", or "missing" when no disk with its UUID was found at boot. */
    state: z.enum(["mounted", "missing"]),
    mountpoint: z.string(),
    freeBytes: z.number().nullable(),
    instances: z.number().int(),
    createdAt: z.string(),
  })
);
export type StorageInfo = z.infer<typeof StorageInfo>;

/** What `storage list` reports: the storages and the local disks. */
export const StorageList = lazySchema(() =>
  z.strictObject({
    storages: z.array(StorageInfo),
    disks: z.array(DiskInfo),
    /** Set when no storage is mounted: where instances live instead. */
    notice: z.string().nullable(),
  })
);
export type StorageList = z.infer<typeof StorageList>;

/** What `system log` returns after its lines (and, with follow, the streamed ones). */
export const LogResult = lazySchema(() =>
  z.strictObject({
    lines: z.array(z.string()),
    /** The log file, STATE/log/kattach.log (the appliance: on its data partition). */
    file: z.string(),
  })
);
export type LogResult = z.infer<typeof LogResult>;

/** Most lines `system log --lines` returns. */
export const MAX_LOG_LINES = 10_000;

/** The storage and log actions: name → a builder of its schemas (built at first use). */
export const storageActions = {
  "storage.list": () => ({ params: z.strictObject({}), result: StorageList }),
  "storage.init": () => ({
    params: z.strictObject({
      disk: DiskName,
      name: StorageName.optional(),
      /** The operator confirmed that everything on the disk is lost. */
      confirm: z.literal(true),
    }),
    result: StorageInfo,
  }),
  "storage.del": () => ({
    params: z.strictObject({ name: StorageName }),
    result: z.strictObject({ deleted: z.string() }),
  }),
  "system.log": () => ({
    params: z.strictObject({
      lines: z.number().int().min(0).max(MAX_LOG_LINES).optional(),
      /** Stream new lines as progress frames until the caller leaves. */
      follow: z.boolean().optional(),
    }),
    result: LogResult,
  }),
} as const;
