/**
 * The desired host links, from the configuration: a bridge per VLAN (fixed name and MAC), an
 * 802.1Q sub-interface of the uplink on the bridge of each tagged VLAN, a tap per guest NIC on
 * its VLAN's bridge, and the gateway address on the bridge of each VLAN the host routes for.
 * Pure: the configuration comes in as plain values; nothing here reads the host.
 */
import { parseCidr } from "../lib/ipv4.ts";
import { bridgeMac, bridgeName, kaosAlias, tapName, vlanLinkName } from "./names.ts";

/** A VLAN as the planner needs it. */
export interface PlanVlan {
  id: number;
  cidr: string;
  gateway: string;
  uplink: "tagged" | "none";
  nat: boolean;
  isolate: boolean;
}

/** A guest NIC on a VLAN. */
export interface PlanNic {
  instance: string;
  index: number;
  mac: string;
  vlan: number;
}

/** What the links are planned from. */
export interface NetworkConfig {
  /** The host's uplink interface (`network.uplink`). */
  uplink: string;
  vlans: PlanVlan[];
  routes: { a: number; b: number }[];
  /** NICs on VLANs (user-mode NICs have no tap). */
  nics: PlanNic[];
  /** Who may open the taps (the user QEMU runs as, when kattach is root). */
  tapOwner?: { uid: number; gid: number };
}

/** One link KaOS wants on the host. */
export type DesiredLink =
  | { kind: "bridge"; name: string; alias: string; mac: string }
  | { kind: "vlan"; name: string; alias: string; parent: string; vlanId: number; master: string }
  | {
    kind: "tap";
    name: string;
    alias: string;
    master: string;
    isolated: boolean;
    owner?: { uid: number; gid: number };
  };

/** The links and addresses KaOS wants on the host. */
export interface DesiredState {
  /** In creation order: bridges, then VLAN links, then taps. */
  links: DesiredLink[];
  /** Addresses by link name, as `IP/PREFIX`. */
  addresses: Map<string, string[]>;
  /** The uplink the VLAN links hang from. */
  uplink: string;
}

/**
 * Whether the host holds the VLAN's gateway address on its bridge. An internal switch (uplink
 * none) has no other way out, so the host is its router. A tagged VLAN extends a network that
 * has its own router, which owns the gateway address; the host takes the gateway only when it
 * routes for the VLAN itself (NAT or a route to another VLAN), else two holders would fight
 * over one address.
 */
export function hostIsRouter(vlan: PlanVlan, routes: NetworkConfig["routes"]): boolean {
  return vlan.uplink === "none" || vlan.nat ||
    routes.some((r) => r.a === vlan.id || r.b === vlan.id);
}

/** Plans the host links of a configuration. */
export function planLinks(config: NetworkConfig): DesiredState {
  const vlans = [...config.vlans].sort((a, b) => a.id - b.id);
  const byId = new Map(vlans.map((v) => [v.id, v]));
  const links: DesiredLink[] = [];
  const addresses = new Map<string, string[]>();
  for (const v of vlans) {
    const name = bridgeName(v.id);
    links.push({ kind: "bridge", name, alias: kaosAlias("bridge", v.id), mac: bridgeMac(v.id) });
    if (hostIsRouter(v, config.routes)) {
      addresses.set(name, [`${v.gateway}/${parseCidr(v.cidr).prefix}`]);
    }
  }
  for (const v of vlans) {
    if (v.uplink !== "tagged") continue;
    links.push({
      kind: "vlan",
      name: vlanLinkName(v.id),
      alias: kaosAlias("vlan", v.id),
      parent: config.uplink,
      vlanId: v.id,
      master: bridgeName(v.id),
    });
  }
  const nics = [...config.nics].sort((a, b) =>
    a.instance < b.instance ? -1 : a.instance > b.instance ? 1 : a.index - b.index
  );
  for (const n of nics) {
    const v = byId.get(n.vlan);
    if (!v) continue; // the store's foreign keys make this impossible; nothing to attach to
    links.push({
      kind: "tap",
      name: tapName(n.mac),
      alias: kaosAlias("tap", n.instance, n.index),
      master: bridgeName(v.id),
      isolated: v.isolate,
      ...(config.tapOwner ? { owner: config.tapOwner } : {}),
    });
  }
  return { links, addresses, uplink: config.uplink };
}
