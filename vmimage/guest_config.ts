/**
 * The guest config channel: what kattach tells the vKaOS guest init at boot, rendered as files
 * (`guest.env`, `guest.json`, `modules/<m>.{env,json}`, `config/<m>.{env,json}`) and packed into a
 * ustar "config disk" the guest finds as the virtio disk with serial `kaos-config`.
 * See docs/guest.md.
 */
import { z } from "zod";
import { describeIssues, UserError } from "../lib/errors.ts";
import { padUstar, writeUstar } from "../lib/ustar.ts";
import { AgentDeclarations, renderAgentEnv } from "./agent/declarations.ts";

/** The format tag written into guest.env and guest.json. */
export const GUEST_CONFIG_FORMAT = "kaos-guest/1";
/** The virtio-blk serial of the config disk. */
export const CONFIG_DISK_SERIAL = "kaos-config";
/** The virtio-blk serial of the instance's data disk (kept across restarts and updates). */
export const DATA_DISK_SERIAL = "kaos-data";
/** The config disk is padded to at least this many bytes. */
export const CONFIG_DISK_MIN_BYTES = 64 * 1024;

/** virtio-blk serials hold at most 20 bytes; QEMU cuts longer ones. */
export const DISK_SERIAL_MAX_BYTES = 20;

/**
 * The virtio-blk serial under which the guest finds an app module's image: `mod-<name>`, cut to
 * 20 bytes (the guest init cuts the same way), so names longer than 16 characters share a prefix.
 */
export function moduleDiskSerial(module: string): string {
  return `mod-${module}`.slice(0, DISK_SERIAL_MAX_BYTES);
}

const Name = z.string().regex(
  /^[a-z][a-z0-9-]{0,62}$/,
  "a name is 1-63 lower-case letters, digits or '-', starting with a letter",
);
const ModuleName = z.string().regex(
  /^[a-z][a-z0-9-]{0,31}$/,
  "a module name is 1-32 lower-case letters, digits or '-', starting with a letter",
);
const FieldName = z.string().regex(
  /^[a-z][a-z0-9_]{0,31}$/,
  "a field name is 1-32 lower-case letters, digits or '_', starting with a letter",
);
const Version = z.string().regex(/^\d{1,6}\.\d{1,6}\.\d{1,6}(-[0-9A-Za-z.]{1,32})?$/);
const NoNul = z.string().max(4096).refine(
  (s) => !s.includes("\0"),
  "NUL characters are not allowed",
);

const IPV4 = /^(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}$/;
const Ipv4 = z.string().regex(IPV4, "an IPv4 address looks like 192.0.2.10");
const Cidr = z.string().refine((s) => {
  const [ip, len, ...rest] = s.split("/");
  return rest.length === 0 && IPV4.test(ip) && /^(\d|[12]\d|3[0-2])$/.test(len ?? "");
}, "an address looks like 192.0.2.10/24");

function ipToInt(ip: string): number {
  return ip.split(".").reduce((n, o) => n * 256 + Number(o), 0);
}

/** One guest NIC, matched inside the guest by MAC. No `address` means DHCP. */
export const GuestNic = z.strictObject({
  mac: z.string().regex(/^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/, "a MAC looks like 52:54:00:12:34:56")
    .refine((m) => (parseInt(m.slice(0, 2), 16) & 1) === 0, "a NIC's MAC must be unicast"),
  address: Cidr.optional(),
  gateway: Ipv4.optional(),
  /** The VLAN the host switch port carries untagged; informational inside the guest. */
  vlan: z.number().int().min(1).max(4094).optional(),
}).superRefine((n, ctx) => {
  if (n.gateway === undefined) return;
  if (n.address === undefined) {
    ctx.addIssue({ code: "custom", message: "a gateway needs a static address" });
    return;
  }
  const [ip, len] = n.address.split("/");
  const mask = Number(len) === 0 ? 0 : (~0 << (32 - Number(len))) >>> 0;
  if (((ipToInt(ip) & mask) >>> 0) !== ((ipToInt(n.gateway) & mask) >>> 0)) {
    ctx.addIssue({ code: "custom", message: `gateway ${n.gateway} is outside ${n.address}` });
  }
});
export type GuestNic = z.infer<typeof GuestNic>;

/** QEMU user-mode networking's fixed addresses (slirp's defaults; kattach never changes them). */
export const SLIRP = { guest: "10.0.2.15/24", gateway: "10.0.2.2", dns: "10.0.2.3" } as const;

/** How the host connects one NIC: a tap with its allocated address, or QEMU user-mode networking. */
export interface HostNic {
  mac: string;
  mode: "tap" | "user";
  address: string | null;
  gateway: string | null;
  vlan: number | null;
}

/**
 * The guest's NICs and DNS servers. User-mode NICs get slirp's fixed address statically, what its
 * DHCP would hand out, so the guest's boot runs no DHCP exchange (udhcpc, its script's `ip` calls:
 * about 0.1 s of CPU under TCG); the first of them gets the default route unless a tap NIC has
 * it, and slirp's DNS when no DNS servers are set. Pure.
 */
export function guestNics(
  nics: HostNic[],
  dns: string[],
): { nics: GuestNic[]; dns: string[] } {
  let route = nics.some((n) => n.mode === "tap" && n.gateway);
  let slirpRoute = false;
  const out = nics.map((n): GuestNic => {
    const vlan = n.vlan === null ? {} : { vlan: n.vlan };
    if (n.mode === "tap") {
      return {
        mac: n.mac,
        ...(n.address ? { address: n.address } : {}),
        ...(n.gateway ? { gateway: n.gateway } : {}),
        ...vlan,
      };
    }
    const gateway = route ? {} : { gateway: SLIRP.gateway };
    slirpRoute ||= !route;
    route = true;
    return { mac: n.mac, address: SLIRP.guest, ...gateway, ...vlan };
  });
  return { nics: out, dns: dns.length > 0 ? dns : slirpRoute ? [SLIRP.dns] : [] };
}

/** One app module the guest mounts and starts. */
export const GuestModule = z.strictObject({
  name: ModuleName,
  version: Version,
  startOrder: z.number().int().min(0).max(1000),
  /** appmgr service argv; argv[0] is relative to the image root (or an absolute guest path). */
  exec: z.array(NoNul.min(1)).min(1).max(32),
  /** The configuration group's values, defaults filled in. */
  config: z.record(FieldName, z.union([NoNul, z.number().int(), z.boolean()])),
  /** What the guest agent may run for the module (appmgr.aq); omitted: nothing. */
  agent: AgentDeclarations.optional(),
});
export type GuestModule = z.infer<typeof GuestModule>;

/** Everything the guest init needs to know about its instance. */
export const GuestConfig = z.strictObject({
  instance: Name,
  vmimage: Name,
  nics: z.array(GuestNic).max(16),
  /** DNS servers (resolv.conf); none: the guest keeps what DHCP gave it, if anything. */
  dns: z.array(Ipv4).max(3).default([]),
  modules: z.array(GuestModule).max(32),
  /** Where the guest mounts its data disk (serial `kaos-data`); omitted: it has none. */
  dataMount: z.string().regex(/^\/[A-Za-z0-9/._-]{1,200}$/).refine((p) => !p.includes(".."))
    .optional(),
}).superRefine((c, ctx) => {
  const names = new Set<string>();
  const serials = new Map<string, string>();
  for (const m of c.modules) {
    if (names.has(m.name)) {
      ctx.addIssue({ code: "custom", message: `module ${m.name} is listed twice` });
    }
    names.add(m.name);
    const serial = moduleDiskSerial(m.name);
    const other = serials.get(serial);
    if (other !== undefined && other !== m.name) {
      ctx.addIssue({
        code: "custom",
        message:
          `modules ${other} and ${m.name} share the disk serial ${serial} (first 16 characters)`,
      });
    }
    serials.set(serial, m.name);
  }
  const macs = new Set<string>();
  for (const n of c.nics) {
    if (macs.has(n.mac)) ctx.addIssue({ code: "custom", message: `MAC ${n.mac} is used twice` });
    macs.add(n.mac);
  }
});
export type GuestConfig = z.input<typeof GuestConfig>;

/** Quotes a value for POSIX sh: single quotes, with `'` written as `'\''`. */
export function shellQuote(value: string): string {
  return `'${value.replaceAll("'", `'\\''`)}'`;
}

function envFile(title: string, pairs: [string, string | number | boolean][]): string {
  const lines = [`# ${title}. Generated by KaOS (${GUEST_CONFIG_FORMAT}); do not edit.`];
  for (const [k, v] of pairs) lines.push(`${k}=${shellQuote(String(v))}`);
  return lines.join("\n") + "\n";
}

function json(value: unknown): string {
  return JSON.stringify(value, null, 2) + "\n";
}

function parse(input: GuestConfig): z.infer<typeof GuestConfig> {
  const r = GuestConfig.safeParse(input);
  if (!r.success) {
    throw new UserError(`Cannot build the guest configuration: ${describeIssues(r.error.issues)}`);
  }
  return r.data;
}

/** Modules in start order: by startOrder, then by name. */
export function modulesInStartOrder(cfg: GuestConfig): GuestModule[] {
  return [...cfg.modules].sort((a, b) =>
    a.startOrder - b.startOrder || (a.name < b.name ? -1 : a.name > b.name ? 1 : 0)
  );
}

/** Renders the config channel's files, path to content, in a stable order. Pure. */
export function renderGuestConfig(input: GuestConfig): Map<string, string> {
  const cfg = parse(input);
  const mods = modulesInStartOrder(cfg);
  const files = new Map<string, string>();
  const guest: [string, string | number][] = [
    ["KAOS_FORMAT", GUEST_CONFIG_FORMAT],
    ["KAOS_INSTANCE", cfg.instance],
    ["KAOS_VMIMAGE", cfg.vmimage],
    ["KAOS_NIC_COUNT", cfg.nics.length],
  ];
  cfg.nics.forEach((n, i) => {
    guest.push([`KAOS_NIC${i}_MAC`, n.mac]);
    guest.push([`KAOS_NIC${i}_ADDR`, n.address ?? ""]);
    guest.push([`KAOS_NIC${i}_GW`, n.gateway ?? ""]);
    guest.push([`KAOS_NIC${i}_VLAN`, n.vlan ?? ""]);
  });
  guest.push(["KAOS_DNS", cfg.dns.join(" ")]);
  guest.push(["KAOS_MODULES", mods.map((m) => m.name).join(" ")]);
  if (cfg.dataMount !== undefined) guest.push(["KAOS_DATA_MOUNT", cfg.dataMount]);
  files.set("guest.env", envFile(`Instance ${cfg.instance}`, guest));
  files.set(
    "guest.json",
    json({
      format: GUEST_CONFIG_FORMAT,
      instance: cfg.instance,
      vmimage: cfg.vmimage,
      nics: cfg.nics.map((n) => ({
        mac: n.mac,
        address: n.address ?? null,
        gateway: n.gateway ?? null,
        vlan: n.vlan ?? null,
      })),
      dns: cfg.dns,
      modules: mods.map((m) => m.name),
      ...(cfg.dataMount === undefined ? {} : { dataMount: cfg.dataMount }),
    }),
  );
  for (const m of mods) {
    const exec: [string, string | number][] = [["KAOS_EXEC_ARGC", m.exec.length]];
    m.exec.forEach((a, i) => exec.push([`KAOS_EXEC_${i}`, a]));
    files.set(
      `modules/${m.name}.env`,
      envFile(`Module ${m.name}`, [
        ["KAOS_MODULE_NAME", m.name],
        ["KAOS_MODULE_VERSION", m.version],
        ["KAOS_START_ORDER", m.startOrder],
        ...exec,
      ]),
    );
    files.set(
      `modules/${m.name}.json`,
      json({ name: m.name, version: m.version, startOrder: m.startOrder, exec: m.exec }),
    );
    if (m.agent) files.set(`modules/${m.name}.agent.env`, renderAgentEnv(m.name, m.agent));
    const config = renderModuleConfig(m);
    files.set(`config/${m.name}.env`, config.env);
    files.set(`config/${m.name}.json`, config.json);
  }
  return files;
}

/**
 * A module's configuration files as the guest reads them (`config/<m>.env` and `.json`); the
 * guest agent's apply-config writes the same text. Pure.
 */
export function renderModuleConfig(
  m: Pick<GuestModule, "name" | "config">,
): { env: string; json: string } {
  const keys = Object.keys(m.config).sort();
  return {
    env: envFile(`Configuration of ${m.name}`, keys.map((k) => [k, m.config[k]])),
    json: json(Object.fromEntries(keys.map((k) => [k, m.config[k]]))),
  };
}

/** Renders the raw config disk: a ustar of {@link renderGuestConfig}'s files, zero-padded. Pure. */
export function renderConfigDisk(input: GuestConfig): Uint8Array {
  const enc = new TextEncoder();
  const files = [...renderGuestConfig(input)].map(([path, text]) => ({
    path,
    data: enc.encode(text),
  }));
  return padUstar(writeUstar(files), CONFIG_DISK_MIN_BYTES);
}
