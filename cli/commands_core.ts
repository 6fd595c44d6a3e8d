/**
 * The core one-line commands: system, VLANs, modules, configuration groups, VM images, deploy and
 * instances (cli/commands.ts assembles them with the other areas' into the registry).
 */
import type {
  ConfigApplyOutcome,
  ConfigGroup,
  ConfigValue,
  DeployedInstance,
  Instance,
  InstancePublished,
  Module,
  ResultOf,
  StoreCheck,
  SystemStatus,
  VlanInfo,
  VmImage,
} from "../ipc/mod.ts";
import { InstanceState } from "../ipc/mod.ts";
import { ALLOW_NEW_PUBLISHER, allowNewPublisher } from "./commands_appqueue.ts";
import { fields, machineText, table } from "./render.ts";
import {
  cmd,
  type Command,
  type FlagSpec,
  intArg,
  PAGE_FLAGS,
  pageParams,
  type Parsed,
  UsageError,
} from "./command.ts";

const STATES: readonly string[] = InstanceState.options;

/** `--state running,paused` as a list of instance states, or a UsageError. */
function stateList(text: string): InstanceState[] {
  const states = text.split(",").map((s) => s.trim());
  const bad = states.find((s) => !STATES.includes(s));
  if (bad !== undefined) {
    throw new UsageError(
      `--state ${JSON.stringify(bad)}: instance states are ${STATES.join(", ")}`,
    );
  }
  return [...new Set(states)] as InstanceState[];
}

/** Parses `key=value` words into a record; a UsageError for a word without `=`. */
export function keyValues(words: string[]): Record<string, ConfigValue> {
  const out: Record<string, ConfigValue> = {};
  for (const w of words) {
    const eq = w.indexOf("=");
    if (eq <= 0) throw new UsageError(`expected key=value, not ${JSON.stringify(w)}`);
    const key = w.slice(0, eq);
    if (Object.hasOwn(out, key)) throw new UsageError(`${key} is given twice`);
    out[key] = w.slice(eq + 1);
  }
  return out;
}

/** Parses `--pool START-END`; undefined when the flag is absent. */
function poolFlag(value: string | boolean | undefined): [string, string] | undefined {
  if (typeof value !== "string") return undefined;
  const m = value.match(/^([^-\s]+)-([^-\s]+)$/);
  if (!m) throw new UsageError("--pool takes START-END, e.g. 10.0.10.100-10.0.10.199");
  return [m[1], m[2]];
}

/** Parses a `--flag yes|no`; undefined when the flag is absent. */
export function yesNoFlag(v: string | boolean | undefined, what: string): boolean | undefined {
  if (v === undefined) return undefined;
  if (v === "yes") return true;
  if (v === "no") return false;
  throw new UsageError(`${what} takes yes or no, not ${JSON.stringify(v)}`);
}

/** Parses `--uplink tagged|none`; undefined when the flag is absent. */
function uplinkFlag(v: string | boolean | undefined): "tagged" | "none" | undefined {
  if (v === undefined) return undefined;
  if (v === "tagged" || v === "none") return v;
  throw new UsageError(`--uplink takes tagged or none, not ${JSON.stringify(v)}`);
}

const VLAN_NET_FLAGS: FlagSpec[] = [
  { name: "uplink", value: "tagged|none", help: "carry the VLAN tagged on the host's uplink" },
  { name: "nat", value: "yes|no", help: "masquerade the VLAN out of the uplink" },
  { name: "isolate", value: "yes|no", help: "guests reach only the gateway, not each other" },
];

function vlanNetParams(p: Parsed) {
  return {
    uplink: uplinkFlag(p.flags.uplink),
    nat: yesNoFlag(p.flags.nat, "--nat"),
    isolate: yesNoFlag(p.flags.isolate, "--isolate"),
  };
}

function list(value: string | boolean | undefined): string[] {
  if (typeof value !== "string" || value === "") return [];
  return value.split(",").map((s) => s.trim()).filter((s) => s !== "");
}

const vlanRow = (v: VlanInfo) => [
  v.id,
  v.name,
  v.cidr,
  v.gateway,
  `${v.poolStart}-${v.poolEnd}`,
  `${v.used}/${v.poolSize}`,
  v.uplink,
  v.nat ? "yes" : "no",
  v.isolate ? "yes" : "no",
];
const VLAN_HEAD = ["ID", "NAME", "CIDR", "GATEWAY", "POOL", "USED", "UPLINK", "NAT", "ISOLATE"];

function renderVlan(v: VlanInfo): string {
  return fields([
    ["VLAN", v.id],
    ["Name", v.name],
    ["Subnet", v.cidr],
    ["Gateway", v.gateway],
    ["Pool", `${v.poolStart} - ${v.poolEnd}`],
    ["Used", `${v.used} of ${v.poolSize}`],
    ["Uplink", v.uplink === "tagged" ? "tagged (802.1Q on the host's uplink)" : "none (internal)"],
    ["NAT", v.nat ? "yes" : "no"],
    ["Isolated", v.isolate ? "yes (guests reach only the gateway)" : "no"],
    ["Reserved", v.reserved.map((r) => r.note ? `${r.ip} (${r.note})` : r.ip).join(", ") || "none"],
  ]);
}

function renderModule(m: Module): string {
  return fields([
    ["Module", m.name],
    ["Version", m.version],
    ["Kind", m.kind],
    ["Description", m.description],
    ["Image", `${m.imageFormat}`],
    ["Installed", m.installedAt],
  ]) + "Files:\n" +
    m.files.map((f) => `  ${f.file.padEnd(16)} ${String(f.size).padStart(10)}  sha256:${f.sha256}`)
      .join("\n") +
    "\n" +
    (m.climod.fields.length === 0 ? "Configuration fields: none\n" : "Configuration fields:\n" +
      table(
        ["NAME", "TYPE", "DEFAULT", "HELP"],
        m.climod.fields.map((f) => [
          f.name,
          f.type === "enum" ? `enum(${f.choices.join("|")})` : f.type,
          f.default === undefined ? "(required)" : String(f.default),
          f.help,
        ]),
      ).replace(/^(?=.)/gm, "  "));
}

function renderGroup(g: ConfigGroup): string {
  return fields([["Configuration group", g.name], ["Module", g.module], ["Updated", g.updatedAt]]) +
    "Values:\n" +
    Object.entries(g.values).map(([k, v]) => `  ${k} = ${shortValue(v)}`).join("\n") +
    "\n";
}

/**
 * A value as `show` (JSON) or `list` (as it is) prints it; a long one (nginx's `site`, up to
 * 64 KiB of base64) is cut to its start and its length.
 */
function shortValue(v: unknown, json = true): string {
  const text = json ? JSON.stringify(v) : String(v);
  return text.length <= 120 ? text : `${text.slice(0, 60)}… (${String(v).length} characters)`;
}

type ConfigGroupSet = ConfigGroup & { applied?: ConfigApplyOutcome[] };

function renderApplied(r: ConfigGroupSet): string {
  if (r.applied === undefined) {
    return "Applied: no (--no-apply); running instances keep their values\n";
  }
  if (r.applied.length === 0) return "Applied: no instance uses this group\n";
  return "Applied:\n" + table(
    ["INSTANCE", "HOW", "RESULT", "DETAIL"],
    r.applied.map((a) => [a.instance, a.mode, a.ok ? "ok" : "FAILED", a.detail]),
  ).replace(/^(?=.)/gm, "  ");
}

function renderImage(v: VmImage): string {
  return fields([
    ["VM image", v.name],
    ["Modules", v.modules.join(", ")],
    ["Configuration groups", v.configGroups.join(", ") || "none"],
    ["VLANs", v.vlans.join(", ") || "none (NAT)"],
    ["Memory", `${v.memoryMiB} MiB`],
    ["vCPUs", v.cpus],
    ["Storage", v.storage ?? "the one with the most free space"],
    ["Data disk", v.dataDiskMiB === null ? "none" : `${v.dataDiskMiB} MiB per instance`],
    ["Instances", v.instances],
  ]);
}

/** A size in MiB from `512`, `512M` or `2G`; a UsageError otherwise. */
function sizeMiB(text: string, what: string): number {
  const m = /^(\d{1,7})([MG]i?B?)?$/i.exec(text);
  if (!m) {
    throw new UsageError(`${what} takes a size such as 512M or 2G, not ${JSON.stringify(text)}`);
  }
  const mib = Number(m[1]) * (m[2]?.[0].toUpperCase() === "G" ? 1024 : 1);
  // The action's bounds (1 MiB to 1 TiB), told in the command's words rather than the schema's.
  if (mib < 1 || mib > 1024 * 1024) {
    throw new UsageError(`${what} runs from 1M to 1024G, not ${JSON.stringify(text)}`);
  }
  return mib;
}

/** One instance's NICs on one line: the address each is the guest's (instance show's ADDRESS). */
function nicText(i: Instance): string {
  return i.nics.map((n) =>
    `${n.vlan === null ? "nat" : `vlan${n.vlan}`} ${n.mac} ${n.address ?? n.ip ?? ""}`.trim()
  )
    .join("; ");
}

/**
 * The modules' health as last checked. A stopped instance's records are those of its last run
 * (a stop during the boot leaves "starting (booting)"), so they are shown as such, not as now.
 */
function healthText(i: Instance): string {
  const last = (i.health ?? []).map((h) => `${h.module} ${h.status} (${h.detail})`).join("; ");
  if (i.state === "stopped" || i.state === "defined") {
    return last ? `not running (at its last run: ${last})` : "not running";
  }
  return last || "-";
}

/** A host port published to an instance, e.g. `tcp 8080 -> 80 (id 1)`. */
function publishedText(f: InstancePublished): string {
  return `${f.proto} ${f.hostPort} -> ${f.guestPort} (id ${f.id})`;
}

/**
 * `Published ports`, where publishing applies: a port is published to a VLAN address behind a
 * tap, so an instance whose NICs are all user-mode (hosted mode, or a VM image without VLANs) has
 * no such line (its Forwards are what reaches it), and a port published to it anyway (stored in
 * hosted mode) is not in effect.
 */
function publishedLine(i: Instance): [string, string][] {
  if (!i.published) return [];
  const userMode = i.network !== undefined && i.network.every((n) => n.mode === "user");
  if (userMode && i.published.length === 0) return [];
  const text = i.published.map(publishedText).join(", ") || "none";
  return [["Published ports", userMode ? `${text} (not in effect: user-mode NICs)` : text]];
}

/**
 * `Forwards`, where they apply: host ports forwarded to the guest ride on its user-mode NIC, so an
 * instance whose NICs are all taps on VLANs (bridged) has no such line (it is reached at its
 * address, its Published ports say what reaches it from outside).
 */
function forwardsLine(i: Instance): [string, string][] {
  const forwards = i.forwards ?? [];
  const tapsOnly = i.network !== undefined && i.network.length > 0 &&
    i.network.every((n) => n.mode === "tap");
  if (tapsOnly && forwards.length === 0) return [];
  return [[
    "Forwards",
    forwards.map((f) => `127.0.0.1:${f.hostPort} -> ${f.guestPort} (${f.module})`).join(", ") ||
    "none",
  ]];
}

function renderInstance(i: Instance): string {
  return fields([
    ["Instance", i.name],
    ["VM image", i.vmimage],
    ["State", i.state],
    ["Autostart", i.autostart ? "yes" : "no"],
    ["Restart policy", i.restartPolicy],
    ["Created", i.createdAt],
    ["Storage", i.storagePlace ?? i.storage ?? "none"],
    ...(i.machine ? [["Machine", machineText(i.machine)] as [string, string]] : []),
    ["QEMU pid", i.pid ?? "-"],
    ["Restarts", i.restarts ?? 0],
    ["Last exit", i.lastExit || "-"],
    ...forwardsLine(i),
    ...publishedLine(i),
    ["Health", healthText(i)],
  ]) + "NICs:\n" + (i.network
    ? table(
      ["NIC", "VLAN", "PORT", "MAC", "ADDRESS", "GATEWAY", "STATE", ""],
      i.network.map((n) => [
        `net${n.index}`,
        n.vlan ?? "-",
        n.tap ? `${n.tap}@${n.bridge}` : "user-mode",
        n.mac,
        n.address ?? "-",
        n.gateway ?? "-",
        n.state,
        n.restartNeeded ? "restart needed" : "",
      ]),
    ).replace(/^(?=.)/gm, "  ") + `  DNS: ${i.dns?.join(", ") || "none"}\n`
    : i.nics.map((n) =>
      `  net${n.index}  ${n.vlan === null ? "nat" : `vlan ${n.vlan}`}  ${n.mac}  ${
        n.address ?? n.ip ?? "-"
      }`
    ).join("\n") + "\n");
}

const deleted = (r: unknown) => `Deleted ${(r as { deleted: string }).deleted}.\n`;

/** Every one-line command. */
/** The core commands, in the order help and menus show them. */
export const coreCommands: Command[] = [
  cmd({
    path: ["system", "status"],
    summary: "Show the host's status",
    args: [],
    flags: [],
    build: () => ({ action: "system.status", params: {} }),
    render(r) {
      const s = r as SystemStatus;
      return fields([
        ["KaOS", `${s.version} (${s.mode})`],
        ["Host", s.hostname],
        ["Uptime", `${s.uptimeSeconds} s`],
        ["Acceleration", `${s.accel.kind.toUpperCase()} — ${s.accel.reason}`],
        ["vKaOS", s.vkaos ?? "not installed"],
        ["VLANs", s.counts.vlans],
        ["Modules", s.counts.modules],
        ["Configuration groups", s.counts.configGroups],
        ["VM images", s.counts.vmimages],
        ["Instances", s.counts.instances],
        ["State", s.stateDir],
        ...(s.dataDisk
          ? [[
            "Data partition",
            `${s.dataDisk.state === "failed" ? "FAILED: " : ""}${s.dataDisk.detail}`,
          ] as [string, string]]
          : []),
        ...(s.sshHostKey?.fingerprint
          ? [[
            "SSH host key",
            s.sshHostKey.fingerprint + (s.sshHostKey.replaced
              ? ` (new since ${s.sshHostKey.replaced.at}; the unusable key before it is kept as ${s.sshHostKey.replaced.keptAs})`
              : ""),
          ] as [string, string]]
          : []),
        [
          "Database",
          `schema ${s.store.schema}, integrity ${s.store.integrity} (checked ${s.store.integrityCheckedAt}; \`system check\` checks again)`,
        ],
        ...(s.storage
          ? [[
            "Guest storage",
            [
              s.storage.mounted.join(", ") || "none",
              s.storage.missing.length > 0 ? `MISSING: ${s.storage.missing.join(", ")}` : "",
            ].filter((x) => x !== "").join("; "),
          ] as [string, string]]
          : []),
      ]) + s.warnings.map((w) => `Warning: ${w}\n`).join("") +
        (s.storage?.notice ? `${s.storage.notice}\n` : "");
    },
  }),

  cmd({
    path: ["system", "check"],
    summary: "Check the configuration database's integrity now (reads all of it)",
    args: [],
    flags: [],
    build: () => ({ action: "system.check", params: {} }),
    render(r) {
      const c = r as StoreCheck;
      return fields([
        ["Integrity", c.integrity],
        ["Checked", `${c.checkedAt} (${c.durationMs} ms)`],
      ]);
    },
  }),

  cmd({
    path: ["vlan", "add"],
    summary: "Add a VLAN (a virtual switch) with its subnet and address pool",
    args: [{ name: "ID" }, { name: "NAME" }, { name: "CIDR" }],
    flags: [
      { name: "gateway", value: "IP", help: "the host's address (default: first host)" },
      { name: "pool", value: "START-END", help: "guest address pool (default: the rest)" },
      ...VLAN_NET_FLAGS,
    ],
    build(p) {
      const [poolStart, poolEnd] = poolFlag(p.flags.pool) ?? [];
      return {
        action: "vlan.add",
        params: {
          id: intArg(p.args.ID, "the VLAN id", [1, 4094]),
          name: p.args.NAME!,
          cidr: p.args.CIDR!,
          gateway: p.flags.gateway as string | undefined,
          poolStart,
          poolEnd,
          ...vlanNetParams(p),
        },
      };
    },
    render: (r) => `Added VLAN ${(r as VlanInfo).id}.\n` + renderVlan(r as VlanInfo),
  }),
  cmd({
    path: ["vlan", "set"],
    summary: "Change a VLAN's name, gateway, pool, uplink, NAT or isolation",
    args: [{ name: "VLAN" }],
    flags: [
      { name: "name", value: "NAME", help: "a new name" },
      { name: "gateway", value: "IP", help: "the host's address" },
      { name: "pool", value: "START-END", help: "guest address pool" },
      ...VLAN_NET_FLAGS,
    ],
    build(p) {
      const pool = poolFlag(p.flags.pool);
      const net = vlanNetParams(p);
      if (
        !p.flags.name && !p.flags.gateway && !pool && net.uplink === undefined &&
        net.nat === undefined && net.isolate === undefined
      ) {
        throw new UsageError(
          "nothing to change: give --name, --gateway, --pool, --uplink, --nat or --isolate",
        );
      }
      return {
        action: "vlan.set",
        params: {
          vlan: p.args.VLAN!,
          name: p.flags.name as string | undefined,
          gateway: p.flags.gateway as string | undefined,
          poolStart: pool?.[0],
          poolEnd: pool?.[1],
          ...net,
        },
      };
    },
    render: (r) => `Changed VLAN ${(r as VlanInfo).id}.\n` + renderVlan(r as VlanInfo),
  }),
  cmd({
    path: ["vlan", "list"],
    summary: "List VLANs",
    args: [],
    flags: PAGE_FLAGS,
    pageable: true,
    build: (p) => ({ action: "vlan.list", params: pageParams(p) }),
    render: (r) => table(VLAN_HEAD, (r as VlanInfo[]).map(vlanRow)),
  }),
  cmd({
    path: ["vlan", "show"],
    summary: "Show a VLAN",
    args: [{ name: "VLAN" }],
    flags: [],
    build: (p) => ({ action: "vlan.show", params: { vlan: p.args.VLAN! } }),
    render: (r) => renderVlan(r as VlanInfo),
  }),
  cmd({
    path: ["vlan", "del"],
    summary: "Delete a VLAN (refused while instances or VM images use it)",
    args: [{ name: "VLAN" }],
    flags: [],
    destructive: true,
    build: (p) => ({ action: "vlan.del", params: { vlan: p.args.VLAN! } }),
    render: deleted,
  }),
  cmd({
    path: ["vlan", "reserve"],
    summary: "Keep an address of a VLAN's subnet from being handed out",
    args: [{ name: "VLAN" }, { name: "IP" }],
    flags: [{ name: "note", value: "TEXT", help: "why it is reserved" }],
    build: (p) => ({
      action: "vlan.reserve",
      params: { vlan: p.args.VLAN!, ip: p.args.IP!, note: (p.flags.note as string) ?? "" },
    }),
    render: (r) => renderVlan(r as VlanInfo),
  }),
  cmd({
    path: ["vlan", "unreserve"],
    summary: "Release a reserved address",
    args: [{ name: "VLAN" }, { name: "IP" }],
    flags: [],
    build: (p) => ({ action: "vlan.unreserve", params: { vlan: p.args.VLAN!, ip: p.args.IP! } }),
    render: (r) => renderVlan(r as VlanInfo),
  }),

  cmd({
    path: ["module", "import"],
    summary: "Install a module from a local directory or a signed bundle file (vKaOS first)",
    args: [{ name: "PATH" }],
    flags: [ALLOW_NEW_PUBLISHER],
    build: (p) => ({
      action: "module.import",
      params: { path: p.args.PATH!, ...allowNewPublisher(p.flags) },
    }),
    render: (r) => `Imported ${(r as Module).name} ${(r as Module).version}.\n`,
  }),
  cmd({
    path: ["module", "list"],
    summary: "List installed modules",
    args: [],
    flags: PAGE_FLAGS,
    pageable: true,
    build: (p) => ({ action: "module.list", params: pageParams(p) }),
    render: (r) =>
      table(
        ["NAME", "VERSION", "KIND", "DESCRIPTION"],
        (r as Module[]).map((m) => [m.name, m.version, m.kind, m.description]),
      ),
  }),
  cmd({
    path: ["module", "show"],
    summary: "Show a module, its files and configuration fields",
    args: [{ name: "NAME" }],
    flags: [],
    build: (p) => ({ action: "module.show", params: { name: p.args.NAME! } }),
    render: (r) => renderModule(r as Module),
  }),
  cmd({
    path: ["module", "del"],
    summary: "Delete a module (refused while VM images or configuration groups use it)",
    args: [{ name: "NAME" }],
    flags: [],
    destructive: true,
    build: (p) => ({ action: "module.del", params: { name: p.args.NAME! } }),
    render: deleted,
  }),

  cmd({
    path: ["config-group", "add"],
    summary: "Create a configuration group of a module",
    args: [{ name: "MODULE" }, { name: "NAME" }, { name: "KEY=VALUE", rest: true, optional: true }],
    flags: [],
    build: (p) => ({
      action: "configGroup.add",
      params: { module: p.args.MODULE!, name: p.args.NAME!, values: keyValues(p.rest) },
    }),
    render: (r) =>
      `Added configuration group ${(r as ConfigGroup).name}.\n` + renderGroup(r as ConfigGroup),
  }),
  cmd({
    path: ["config-group", "list"],
    summary: "List configuration groups",
    args: [],
    flags: [{ name: "module", value: "MODULE", help: "only this module's" }, ...PAGE_FLAGS],
    pageable: true,
    build: (p) => ({
      action: "configGroup.list",
      params: { module: p.flags.module as string | undefined, ...pageParams(p) },
    }),
    render: (r) =>
      table(
        ["NAME", "MODULE", "VALUES"],
        (r as ConfigGroup[]).map((g) => [
          g.name,
          g.module,
          Object.entries(g.values).map(([k, v]) => `${k}=${shortValue(v, false)}`).join(" "),
        ]),
      ),
  }),
  cmd({
    path: ["config-group", "show"],
    summary: "Show a configuration group",
    args: [{ name: "NAME" }],
    flags: [],
    build: (p) => ({ action: "configGroup.show", params: { name: p.args.NAME! } }),
    render: (r) => renderGroup(r as ConfigGroup),
  }),
  cmd({
    path: ["config-group", "set"],
    summary:
      "Change values of a configuration group and apply them to the running instances that use it",
    args: [{ name: "NAME" }, { name: "KEY=VALUE", rest: true }],
    flags: [{
      name: "no-apply",
      boolean: true,
      help: "store only: running instances get the values at their next start",
    }],
    build: (p) => ({
      action: "configGroup.set",
      params: {
        name: p.args.NAME!,
        values: keyValues(p.rest),
        apply: p.flags["no-apply"] !== true,
      },
    }),
    render: (r) => renderGroup(r as ConfigGroup) + renderApplied(r as ConfigGroupSet),
  }),
  cmd({
    path: ["config-group", "del"],
    summary: "Delete a configuration group (refused while VM images use it)",
    args: [{ name: "NAME" }],
    flags: [],
    destructive: true,
    build: (p) => ({ action: "configGroup.del", params: { name: p.args.NAME! } }),
    render: deleted,
  }),

  cmd({
    path: ["vmimage", "create"],
    summary: "Create a VM image from App Modules and configuration groups",
    args: [{ name: "NAME" }],
    flags: [
      { name: "modules", value: "A,B", required: true, help: "App Modules (vKaOS is implied)" },
      { name: "config-groups", value: "X,Y", help: "one configuration group per module" },
      { name: "vlan", value: "ID[,ID]", help: "VLANs to attach (one NIC each; none: NAT)" },
      { name: "memory", value: "MiB", help: "guest memory (default 256)" },
      { name: "cpus", value: "N", help: "vCPUs (default 1)" },
      {
        name: "data-disk",
        value: "SIZE",
        help: "each instance's own data disk, kept across restarts and updates (e.g. 512M, 2G)",
      },
      { name: "storage", value: "NAME", help: "storage (default: the one with most free space)" },
    ],
    build(p) {
      const modules = list(p.flags.modules);
      if (modules.length === 0) throw new UsageError("--modules is required, e.g. --modules web");
      return {
        action: "vmimage.create",
        params: {
          name: p.args.NAME!,
          modules,
          configGroups: list(p.flags["config-groups"]),
          vlans: list(p.flags.vlan).map((v) => intArg(v, "a VLAN id", [1, 4094])),
          memoryMiB: p.flags.memory === undefined
            ? undefined
            : intArg(p.flags.memory as string, "--memory", [32, 1024 * 1024]),
          cpus: p.flags.cpus === undefined
            ? undefined
            : intArg(p.flags.cpus as string, "--cpus", [1, 64]),
          dataDiskMiB: p.flags["data-disk"] === undefined
            ? undefined
            : sizeMiB(p.flags["data-disk"] as string, "--data-disk"),
          storage: p.flags.storage as string | undefined,
        },
      };
    },
    render: (r) => `Created VM image ${(r as VmImage).name}.\n` + renderImage(r as VmImage),
  }),
  cmd({
    path: ["vmimage", "list"],
    summary: "List VM images",
    args: [],
    flags: PAGE_FLAGS,
    pageable: true,
    build: (p) => ({ action: "vmimage.list", params: pageParams(p) }),
    render: (r) =>
      table(
        ["NAME", "MODULES", "CONFIG GROUPS", "VLANS", "MEMORY", "CPUS", "INSTANCES"],
        (r as VmImage[]).map((v) => [
          v.name,
          v.modules.join(","),
          v.configGroups.join(",") || "-",
          v.vlans.join(",") || "nat",
          `${v.memoryMiB}M`,
          v.cpus,
          v.instances,
        ]),
      ),
  }),
  cmd({
    path: ["vmimage", "show"],
    summary: "Show a VM image",
    args: [{ name: "NAME" }],
    flags: [],
    build: (p) => ({ action: "vmimage.show", params: { name: p.args.NAME! } }),
    render: (r) => renderImage(r as VmImage),
  }),
  cmd({
    path: ["vmimage", "del"],
    summary: "Delete a VM image (refused while deployed)",
    args: [{ name: "NAME" }],
    flags: [],
    destructive: true,
    build: (p) => ({ action: "vmimage.del", params: { name: p.args.NAME! } }),
    render: deleted,
  }),

  cmd({
    path: ["deploy"],
    summary: "Deploy instances of a VM image",
    args: [{ name: "VMIMAGE" }],
    flags: [
      { name: "count", value: "N", help: "how many instances (default 1)" },
      { name: "no-start", boolean: true, help: "only define them (default: start them)" },
      { name: "wait", boolean: true, help: "wait until they are ready (or failed)" },
    ],
    build: (p) => ({
      action: "deploy",
      params: {
        vmimage: p.args.VMIMAGE!,
        count: p.flags.count === undefined
          ? 1
          : intArg(p.flags.count as string, "--count", [1, 256]),
        noStart: p.flags["no-start"] === true,
        wait: p.flags.wait === true,
      },
    }),
    render: (r) =>
      `Deployed ${(r as DeployedInstance[]).length} instance(s):\n` +
      table(
        ["NAME", "OUTCOME", "STATE", "NICS"],
        (r as DeployedInstance[]).map((i) => [i.name, i.outcome, i.state, nicText(i)]),
      ),
    problems: (r) =>
      (r as DeployedInstance[]).filter((i) => i.outcome === "failed").map((i) =>
        `${i.name} failed: ${i.reason ?? i.state}`
      ),
  }),
  cmd({
    path: ["instance", "list"],
    summary: "List instances",
    args: [],
    flags: [
      { name: "vmimage", value: "NAME", help: "only this VM image's" },
      { name: "state", value: "STATE[,STATE]", help: "only instances in these states" },
      ...PAGE_FLAGS,
    ],
    pageable: true,
    build: (p) => ({
      action: "instance.list",
      params: {
        vmimage: p.flags.vmimage as string | undefined,
        state: p.flags.state === undefined ? undefined : stateList(String(p.flags.state)),
        ...pageParams(p),
      },
    }),
    render: (r) =>
      table(
        ["NAME", "VMIMAGE", "STATE", "NICS"],
        (r as Instance[]).map((i) => [i.name, i.vmimage, i.state, nicText(i)]),
      ),
  }),
  cmd({
    path: ["instance", "show"],
    summary: "Show an instance",
    args: [{ name: "NAME" }],
    flags: [],
    build: (p) => ({ action: "instance.show", params: { name: p.args.NAME! } }),
    render: (r) => renderInstance(r as Instance),
  }),
  cmd({
    path: ["instance", "del"],
    summary: "Delete an instance (its addresses, MACs and published ports are released)",
    args: [{ name: "NAME" }],
    flags: [],
    destructive: true,
    build: (p) => ({ action: "instance.del", params: { name: p.args.NAME! } }),
    render(r) {
      const { deleted, unpublished } = r as ResultOf<"instance.del">;
      const ports = unpublished.map(publishedText).join(", ");
      return `Deleted ${deleted}.\n` + (ports ? `No longer published: ${ports}.\n` : "");
    },
  }),
];
