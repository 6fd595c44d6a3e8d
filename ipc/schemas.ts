/**
 * The KaOS domain as it crosses the IPC channel. kattach validates rows read back from SQLite
 * with the same schemas, so one definition serves the store, the wire and the CLI.
 */
import { z } from "zod";
import { lazySchema } from "../lib/lazy_schema.ts";
import {
  Appmgr,
  Climod,
  ImageFormat,
  ModuleKind,
  ModuleName,
  ModuleVersion,
} from "../appqueue/manifest.ts";

/** Names of VLANs, VM images and configuration groups. */
export const ObjectName = lazySchema(() =>
  z.string().regex(
    /^[a-z][a-z0-9-]{0,31}$/,
    "names are 1-32 lower-case letters, digits or '-', starting with a letter",
  )
);

/**
 * What a list's `filter` matches names with (issue 13: the pick lists of 10,000 instances): a part
 * of a name, in the characters names are made of.
 */
export const ListFilter = lazySchema(() =>
  z.string().regex(
    /^[A-Za-z0-9._-]{1,64}$/,
    "a list filter is 1-64 letters, digits, '.', '_' or '-' (a part of a name)",
  )
);

/**
 * One page of a long list (issue 13: the menus page through 10,000 instances instead of fetching
 * them all): at most `limit` entries after skipping `offset`, in the list's order; with `filter`,
 * only the entries whose name contains it (any case; a VLAN also by an id starting with it; a
 * published port by its instance's name), matched by SQLite before the LIMIT.
 */
export const ListWindow = lazySchema(() => (
  {
    limit: z.number().int().min(1).max(100_000).optional(),
    offset: z.number().int().min(0).max(Number.MAX_SAFE_INTEGER).optional(),
    filter: ListFilter.optional(),
  }
));

/** An instance name: `<vmimage>-<n>`. */
export const InstanceName = lazySchema(() =>
  z.string().regex(
    /^[a-z][a-z0-9-]{0,31}-[1-9][0-9]{0,5}$/,
    "instance names look like web-1",
  )
);

/** A VLAN id, 1-4094. */
export const VlanId = lazySchema(() =>
  z.number().int().min(1, "VLAN ids run from 1 to 4094").max(
    4094,
    "VLAN ids run from 1 to 4094",
  )
);

/** How a VLAN's switch reaches outside: `tagged` (802.1Q on the host's uplink) or `none`. */
export const VlanUplink = lazySchema(() => z.enum(["tagged", "none"]));
export type VlanUplink = z.infer<typeof VlanUplink>;

/** A VLAN: one virtual switch with its IPv4 subnet and address pool. */
export const Vlan = lazySchema(() =>
  z.strictObject({
    id: VlanId,
    name: ObjectName,
    cidr: z.string(),
    gateway: z.string(),
    poolStart: z.string(),
    poolEnd: z.string(),
    /** `tagged`: the switch carries the VLAN tagged on the host's uplink; `none`: internal. */
    uplink: VlanUplink,
    /** The host masquerades the VLAN's traffic out of the uplink. */
    nat: z.boolean(),
    /** Guests on the VLAN cannot reach each other, only the gateway and the uplink. */
    isolate: z.boolean(),
    createdAt: z.string(),
  })
);
export type Vlan = z.infer<typeof Vlan>;

/** A route between two VLANs (off by default); stored with `a < b`. */
export const VlanRoute = lazySchema(() => z.strictObject({ a: VlanId, b: VlanId }));
export type VlanRoute = z.infer<typeof VlanRoute>;

/** A Linux interface name (1-15 bytes, no '/', ':' or white space). */
export const IfaceName = lazySchema(() =>
  z.string().regex(
    /^[A-Za-z0-9_.-]{1,15}$/,
    "interface names are 1-15 letters, digits, '_', '.' or '-'",
  )
);

/** The host's network settings (`network set`). */
export const NetworkSettings = lazySchema(() =>
  z.strictObject({
    /** The host's uplink interface: tagged VLANs ride on it, NAT leaves through it. */
    uplink: IfaceName,
    /** DNS servers handed to guests (at most 3, like resolv.conf). */
    dns: z.array(z.string()).max(3),
  })
);
export type NetworkSettings = z.infer<typeof NetworkSettings>;

/** A VLAN with its pool usage, as `vlan list/show` report it. */
export const VlanInfo = lazySchema(() =>
  Vlan.extend({
    poolSize: z.number().int(),
    used: z.number().int(),
    reserved: z.array(z.strictObject({ ip: z.string(), note: z.string() })),
  })
);
export type VlanInfo = z.infer<typeof VlanInfo>;

/** One stored file of an installed module. */
export const ModuleFile = lazySchema(() =>
  z.strictObject({
    part: z.enum(["manifest", "image", "climod", "appmgr"]),
    file: z.string(),
    sha256: z.string().regex(/^[0-9a-f]{64}$/),
    size: z.number().int().min(0),
  })
);
export type ModuleFile = z.infer<typeof ModuleFile>;

/** An installed module. */
export const Module = lazySchema(() =>
  z.strictObject({
    name: ModuleName,
    version: ModuleVersion,
    kind: ModuleKind,
    description: z.string(),
    imageFormat: ImageFormat,
    dir: z.string(),
    files: z.array(ModuleFile),
    climod: Climod,
    appmgr: Appmgr,
    installedAt: z.string(),
  })
);
export type Module = z.infer<typeof Module>;

/** A value of a configuration field. */
export const ConfigValue = lazySchema(() => z.union([z.string(), z.number(), z.boolean()]));
export type ConfigValue = z.infer<typeof ConfigValue>;

/** A configuration group: one named configuration instance of a module. */
export const ConfigGroup = lazySchema(() =>
  z.strictObject({
    name: ObjectName,
    module: ModuleName,
    values: z.record(z.string(), ConfigValue),
    createdAt: z.string(),
    updatedAt: z.string(),
  })
);
export type ConfigGroup = z.infer<typeof ConfigGroup>;

/** A VM image: vKaOS + App Modules + configuration groups, deployable many times. */
export const VmImage = lazySchema(() =>
  z.strictObject({
    name: ObjectName,
    modules: z.array(ModuleName),
    configGroups: z.array(ObjectName),
    vlans: z.array(VlanId),
    memoryMiB: z.number().int(),
    cpus: z.number().int(),
    /** Each instance's own data disk, MiB (kept across restarts and module updates); null: none. */
    dataDiskMiB: z.number().int().nullable(),
    createdAt: z.string(),
    instances: z.number().int(),
    /** The storage its instances are placed on; null: the one with the most free space. */
    storage: z.string().nullable().optional(),
  })
);
export type VmImage = z.infer<typeof VmImage>;

/** Where an instance is in its life. */
export const InstanceState = lazySchema(() =>
  z.enum([
    "defined",
    "starting",
    "running",
    "paused",
    "stopping",
    "stopped",
    "failed",
  ])
);
export type InstanceState = z.infer<typeof InstanceState>;

/** A virtual NIC of an instance; `vlan` null means user-mode NAT. */
export const Nic = lazySchema(() =>
  z.strictObject({
    index: z.number().int().min(0),
    vlan: VlanId.nullable(),
    mac: z.string(),
    /** The address allocated from the VLAN's pool (kept in every networking mode). */
    ip: z.string().nullable(),
    /**
     * `IP/PREFIX` the guest has on this NIC: the allocated address on a tap (bridged networking),
     * QEMU's user-mode address (10.0.2.15/24) otherwise (`instance list`, `instance show`).
     */
    address: z.string().optional(),
  })
);
export type Nic = z.infer<typeof Nic>;

/** A 127.0.0.1 host port forwarded to a guest port (user-mode NAT). */
export const Forward = lazySchema(() =>
  z.strictObject({
    hostPort: z.number().int(),
    guestPort: z.number().int(),
    module: z.string(),
  })
);
export type Forward = z.infer<typeof Forward>;

/** The readiness of one module inside an instance (appmgr.aq readiness). */
export const ModuleHealth = lazySchema(() =>
  z.strictObject({
    module: z.string(),
    status: z.enum(["starting", "ready", "failed"]),
    detail: z.string(),
    checkedAt: z.string(),
  })
);
export type ModuleHealth = z.infer<typeof ModuleHealth>;

/** How one NIC of an instance is connected, as `instance show` reports it. */
export const NicStatus = lazySchema(() =>
  z.strictObject({
    index: z.number().int(),
    vlan: VlanId.nullable(),
    /** `tap` on the VLAN's bridge (bridged networking) or QEMU `user`-mode networking. */
    mode: z.enum(["tap", "user"]),
    tap: z.string().nullable(),
    bridge: z.string().nullable(),
    mac: z.string(),
    /** `IP/PREFIX` the guest is given: its VLAN address on a tap, QEMU's 10.0.2.15/24 otherwise. */
    address: z.string().nullable(),
    gateway: z.string().nullable(),
    /** The tap's state on the host: `up`, `down`, `missing`; `-` for user-mode NICs. */
    state: z.string(),
    /** The gateway, address or DNS changed since the guest started: a restart applies them. */
    restartNeeded: z.boolean(),
  })
);
export type NicStatus = z.infer<typeof NicStatus>;

/** A deployed instance of a VM image. */
export const Instance = lazySchema(() =>
  z.strictObject({
    name: InstanceName,
    vmimage: ObjectName,
    state: InstanceState,
    autostart: z.boolean(),
    restartPolicy: z.enum(["always", "on-failure", "never"]),
    nics: z.array(Nic),
    createdAt: z.string(),
    /** The QEMU process while one runs (guests). */
    pid: z.number().int().nullable().optional(),
    /** Host port forwards of its user-mode NIC (guests). */
    forwards: z.array(Forward).optional(),
    /** Readiness per module (guests). */
    health: z.array(ModuleHealth).optional(),
    /** How often the supervisor restarted it, and why it last ended (guests). */
    restarts: z.number().int().optional(),
    lastExit: z.string().optional(),
    /** Per NIC: how it is connected (instance show). */
    network: z.array(NicStatus).optional(),
    /** DNS servers the guest gets (instance show). */
    dns: z.array(z.string()).optional(),
    /**
     * The storage its overlays and runtime files live on; null: none, they live in the state
     * directory (on the appliance: its data partition).
     */
    storage: z.string().nullable().optional(),
    /**
     * Where its files live, in words (instance show): the storage's name, `the data partition`
     * (the appliance) or `the state directory DIR` (hosted).
     */
    storagePlace: z.string().optional(),
    /** The machine its next start runs on and why, e.g. `q35: set on the instance` (show, set). */
    machine: z.string().optional(),
  })
);
export type Instance = z.infer<typeof Instance>;

/** One instance of a `deploy`, and what happened to it. */
export const DeployedInstance = lazySchema(() =>
  Instance.extend({
    /**
     * `defined` (--no-start), `started` (QEMU runs; readiness not awaited), `ready` (--wait: every
     * readiness check passed), `failed` (did not start, or --wait: never became ready).
     */
    outcome: z.enum(["defined", "started", "ready", "failed"]),
    /** Why it failed. */
    reason: z.string().optional(),
    /**
     * Started: what QEMU answered to kattach's first `query-status` (`running`, unless it was
     * started paused), so a caller needs no QMP round of its own to know.
     */
    qmpStatus: z.string().optional(),
  })
);
export type DeployedInstance = z.infer<typeof DeployedInstance>;

/** What became of the appliance's data partition at boot (null in hosted mode). */
export const DataDiskStatus = lazySchema(() =>
  z.strictObject({
    /** mounted: state persists; absent: none found, state in RAM; failed: found but unusable. */
    state: z.enum(["mounted", "absent", "failed"]),
    device: z.string().nullable(),
    detail: z.string(),
  })
);
export type DataDiskStatus = z.infer<typeof DataDiskStatus>;

/** The result of an integrity check of the configuration store (`system check`). */
export const StoreCheck = lazySchema(() =>
  z.strictObject({
    /** SQLite's `integrity_check`: "ok" or what is wrong. */
    integrity: z.string(),
    checkedAt: z.string(),
    /** How long the check took, in ms. */
    durationMs: z.number(),
  })
);
export type StoreCheck = z.infer<typeof StoreCheck>;

/** What `system status` reports. */
export const SystemStatus = lazySchema(() =>
  z.strictObject({
    version: z.string(),
    hostname: z.string(),
    pid: z.number().int(),
    mode: z.enum(["hosted", "appliance"]),
    stateDir: z.string(),
    uptimeSeconds: z.number(),
    accel: z.strictObject({ kind: z.enum(["kvm", "tcg"]), reason: z.string() }),
    vkaos: z.string().nullable(),
    /**
     * The store's schema and its last integrity check (run at start and by `system check`, not
     * per status: a full check reads the whole database).
     */
    store: z.strictObject({
      schema: z.number().int(),
      integrity: z.string(),
      integrityCheckedAt: z.string(),
    }),
    dataDisk: DataDiskStatus.nullable(),
    counts: z.strictObject({
      vlans: z.number().int(),
      modules: z.number().int(),
      configGroups: z.number().int(),
      vmimages: z.number().int(),
      instances: z.number().int(),
    }),
    /** What the operator should look at (e.g. management open to any source). */
    warnings: z.array(z.string()),
    /**
     * The SSH host key: its fingerprint (null before the sshd made one), the latest replacement
     * of an unusable key file (kept as `keptAs`), and the warning while that is recent.
     */
    sshHostKey: z.strictObject({
      fingerprint: z.string().nullable(),
      replaced: z.strictObject({ at: z.string(), keptAs: z.string() }).nullable(),
      notice: z.string().nullable(),
    }).optional(),
    /** Guest storage: mounted and missing storages, and a notice when there is none. */
    storage: z.strictObject({
      mounted: z.array(z.string()),
      missing: z.array(z.string()),
      notice: z.string().nullable(),
    }).optional(),
  })
);
export type SystemStatus = z.infer<typeof SystemStatus>;
