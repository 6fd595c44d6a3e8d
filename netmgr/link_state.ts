/**
 * What the host reports about its links: `ip -j -d link show` and `ip -j -4 addr show`, checked
 * with zod at the edge (only the fields KaOS reads; iproute2 adds fields between releases) and
 * reduced to the facts the diff compares.
 */
import { z } from "zod";

const IpLink = z.object({
  ifname: z.string(),
  flags: z.array(z.string()).default([]),
  master: z.string().optional(),
  address: z.string().optional(),
  ifalias: z.string().optional(),
  /** The parent of a VLAN link ("eth0"); absent when the parent is in another namespace. */
  link: z.string().nullable().optional(),
  linkinfo: z.object({
    info_kind: z.string().optional(),
    info_data: z.object({
      type: z.string().optional(),
      id: z.number().int().optional(),
    }).optional(),
    info_slave_kind: z.string().optional(),
    info_slave_data: z.object({ isolated: z.boolean().optional() }).optional(),
  }).optional(),
});

const IpAddr = z.object({
  ifname: z.string(),
  addr_info: z.array(
    z.object({ family: z.string(), local: z.string(), prefixlen: z.number().int() }),
  ).default([]),
});

/** One link as the host reports it. */
export interface HostLink {
  name: string;
  /** `bridge`, `vlan`, `tap` (a tun device in tap mode), another kernel kind, or null. */
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

/** Parses the JSON of `ip -j -d link show`; throws naming the problem when it is malformed. */
export function parseIpLinks(json: string): Map<string, HostLink> {
  const rows = z.array(IpLink).parse(JSON.parse(json || "[]"));
  const links = new Map<string, HostLink>();
  for (const r of rows) {
    const info = r.linkinfo;
    let kind = info?.info_kind ?? null;
    if (kind === "tun") kind = info?.info_data?.type === "tap" ? "tap" : "tun";
    links.set(r.ifname, {
      name: r.ifname,
      kind,
      alias: r.ifalias ?? null,
      master: r.master ?? null,
      mac: r.address ?? null,
      up: r.flags.includes("UP"),
      parent: kind === "vlan" ? (r.link ?? null) : null,
      vlanId: kind === "vlan" ? (info?.info_data?.id ?? null) : null,
      isolated: info?.info_slave_kind === "bridge"
        ? (info.info_slave_data?.isolated ?? false)
        : null,
    });
  }
  return links;
}

/** Parses the JSON of `ip -j -4 addr show` into `IP/PREFIX` lists by link name. */
export function parseIpAddrs(json: string): Map<string, string[]> {
  const rows = z.array(IpAddr).parse(JSON.parse(json || "[]"));
  const out = new Map<string, string[]>();
  for (const r of rows) {
    const v4 = r.addr_info.filter((a) => a.family === "inet").map((a) =>
      `${a.local}/${a.prefixlen}`
    );
    if (v4.length > 0) out.set(r.ifname, v4);
  }
  return out;
}
