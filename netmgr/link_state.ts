/**
 * What the host reports about its links, checked with zod at the edge (only the fields KaOS
 * reads; iproute2 adds fields between releases) and reduced to the facts the diff compares.
 * Four cheap reads instead of one detailed dump (`ip -j -d link` of a 5,000-link host is 7 MB
 * of JSON): `ip -j link show` (names, flags, master, alias, parent), `ip -j -br -4 addr show`,
 * `bridge -j -d link show` (ports and their `isolated` flag) and `ip -j -d link show type vlan`
 * (802.1Q ids). The kind of a link carrying the KaOS mark follows from its name (KaOS made it);
 * VLAN links are recognised by the kernel's own report.
 *
 * The same facts come faster from one in-process rtnetlink dump (host/rtnetlink.ts):
 * {@linkcode hostStateFromDump} reduces it to the same {@linkcode HostState}.
 */
import { z } from "zod";
import type { LinkDump } from "../host/mod.ts";
import { isKaosLink } from "./names.ts";

const IpLink = z.object({
  ifname: z.string(),
  flags: z.array(z.string()),
  master: z.string().optional(),
  address: z.string().optional(),
  ifalias: z.string().optional(),
  /** The parent of a VLAN link ("eth0"). */
  link: z.string().nullable().optional(),
});

const IpAddrBrief = z.object({
  ifname: z.string(),
  addr_info: z.array(z.object({ local: z.string(), prefixlen: z.number().int() })).optional(),
});

const BridgePort = z.object({
  ifname: z.string(),
  master: z.string().optional(),
  isolated: z.boolean().optional(),
});

const IpVlan = z.object({
  ifname: z.string(),
  link: z.string().nullable().optional(),
  linkinfo: z.object({ info_data: z.object({ id: z.number().int() }) }),
});

/** The raw JSON texts of the four reads (empty text: none). */
export interface HostReads {
  /** `ip -j link show` */
  links: string;
  /** `ip -j -br -4 addr show` */
  addresses: string;
  /** `bridge -j -d link show` */
  ports: string;
  /** `ip -j -d link show type vlan` */
  vlans: string;
}

/** One link as the host reports it. */
export interface HostLink {
  name: string;
  /** `bridge`, `vlan` or `tap` for links KaOS owns (and VLAN links); null otherwise. */
  kind: string | null;
  alias: string | null;
  master: string | null;
  mac: string | null;
  up: boolean;
  /** A VLAN link's parent and id. */
  parent: string | null;
  vlanId: number | null;
  /** A bridge port's `isolated` flag; null when not a bridge port. */
  isolated: boolean | null;
}

/** The host's links by name and their IPv4 addresses (`IP/PREFIX`) by link name. */
export interface HostState {
  links: Map<string, HostLink>;
  addresses: Map<string, string[]>;
}

/**
 * The host's state as far as `names` go (their links and addresses): a diff against it changes
 * only those links, and deletes those of them that carry KaOS' mark and the plan leaves out (a
 * start's or a deleted instance's own links, never another's).
 */
export function onlyLinks(host: HostState, names: Iterable<string>): HostState {
  const links = new Map<string, HostLink>();
  const addresses = new Map<string, string[]>();
  for (const name of names) {
    const l = host.links.get(name);
    if (l) links.set(name, l);
    const a = host.addresses.get(name);
    if (a) addresses.set(name, a);
  }
  return { links, addresses };
}

function rows<T extends z.ZodType>(schema: T, json: string): z.infer<T>[] {
  const data: unknown = JSON.parse(json.trim() || "[]");
  // iproute2 prints `[{}]` for a filter that matches nothing (`ip -j link show type vlan`).
  const items = Array.isArray(data)
    ? data.filter((x) => !(x && typeof x === "object" && Object.keys(x).length === 0))
    : data;
  return z.array(schema).parse(items);
}

const KIND_BY_PREFIX: [string, string][] = [["kbr", "bridge"], ["kt", "tap"]];

/** Parses the four reads into the host's state; throws naming the problem when one is malformed. */
export function parseHostState(r: HostReads): HostState {
  const ports = new Map(rows(BridgePort, r.ports).map((p) => [p.ifname, p]));
  const vlans = new Map(rows(IpVlan, r.vlans).map((v) => [v.ifname, v]));
  const links = new Map<string, HostLink>();
  for (const l of rows(IpLink, r.links)) {
    const vlan = vlans.get(l.ifname);
    const port = ports.get(l.ifname);
    const owned = isKaosLink(l.ifname, l.ifalias);
    links.set(l.ifname, {
      name: l.ifname,
      kind: vlan
        ? "vlan"
        : owned
        ? KIND_BY_PREFIX.find(([p]) => l.ifname.startsWith(p))?.[1] ?? null
        : null,
      alias: l.ifalias ?? null,
      master: l.master ?? null,
      mac: l.address ?? null,
      up: l.flags.includes("UP"),
      parent: vlan ? (vlan.link ?? l.link ?? null) : null,
      vlanId: vlan ? vlan.linkinfo.info_data.id : null,
      isolated: port && l.master ? (port.isolated ?? false) : null,
    });
  }
  const addresses = new Map<string, string[]>();
  for (const a of rows(IpAddrBrief, r.addresses)) {
    const v4 = (a.addr_info ?? []).map((x) => `${x.local}/${x.prefixlen}`);
    if (v4.length > 0) addresses.set(a.ifname, v4);
  }
  return { links, addresses };
}

/** Parses `ip -j link show` alone (names, masters, aliases, up): enough to check taps. */
export function parseIpLinks(json: string): Map<string, HostLink> {
  return parseHostState({ links: json, addresses: "", ports: "", vlans: "" }).links;
}

/**
 * The host's state from one in-process rtnetlink dump (host/rtnetlink.ts): the same facts as
 * {@linkcode parseHostState} gives from the four `ip -j` reads (tests/network_test.ts compares
 * the two on a real kernel).
 */
export function hostStateFromDump(dump: LinkDump): HostState {
  const names = new Map<number, string>();
  for (const l of dump.links) names.set(l.index, l.name);
  const links = new Map<string, HostLink>();
  for (const l of dump.links) {
    const vlan = l.kind === "vlan";
    const master = l.master === null ? null : names.get(l.master) ?? null;
    links.set(l.name, {
      name: l.name,
      kind: vlan
        ? "vlan"
        : isKaosLink(l.name, l.alias ?? undefined)
        ? KIND_BY_PREFIX.find(([p]) => l.name.startsWith(p))?.[1] ?? null
        : null,
      alias: l.alias,
      master,
      mac: l.address,
      up: l.up,
      parent: vlan && l.link !== null ? names.get(l.link) ?? null : null,
      vlanId: vlan ? l.vlanId : null,
      isolated: master !== null && l.isolated !== null ? l.isolated : null,
    });
  }
  const addresses = new Map<string, string[]>();
  for (const a of dump.addresses) {
    const name = names.get(a.index);
    if (name === undefined) continue;
    const list = addresses.get(name) ?? [];
    list.push(`${a.local}/${a.prefixlen}`);
    addresses.set(name, list);
  }
  return { links, addresses };
}
