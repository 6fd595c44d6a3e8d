/**
 * The firewall renderer (pure): from a typed picture of the host's VLANs, guest ports,
 * management sources, published ports and user rules, one nft script that replaces only KaOS'
 * own tables, `table inet kaos` and `table bridge kaos` (the Proxmox idiom: declare, delete,
 * define, all in one `nft -f` transaction). It never flushes the ruleset and never names another
 * table. Objects go into sets and maps, so the number of rules stays the same however many VLANs
 * and guests there are; only user rules add rules.
 */
import { z } from "zod";
import { contains, formatCidr, parseCidr, parseIpv4 } from "../lib/ipv4.ts";

const VlanId = z.number().int().min(1).max(4094);
const Port = z.number().int().min(1).max(65535);
const IfName = z.string().regex(/^[A-Za-z0-9_.-]{1,15}$/, "not an interface name");
const Mac = z.string().regex(/^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/, "not a lower-case MAC");
const Ip = z.string().regex(/^\d{1,3}(\.\d{1,3}){3}$/, "not an IPv4 address");
/** Any IPv4 block, prefix 0-32 (management sources, user rules). */
const AnyCidr = z.string().regex(/^\d{1,3}(\.\d{1,3}){3}\/\d{1,2}$/, "not an IPv4 CIDR");

/** One VLAN's switch as the firewall sees it. */
export const FirewallVlan = z.strictObject({
  id: VlanId,
  cidr: AnyCidr,
  gateway: Ip,
  /** The bridge (kbr<ID>) the VLAN's ports hang on. */
  bridge: IfName,
  /** Masquerade the VLAN out of the uplink. */
  nat: z.boolean(),
  /** Guests on the VLAN cannot reach each other (only the gateway and the uplink). */
  isolate: z.boolean(),
});
export type FirewallVlan = z.infer<typeof FirewallVlan>;

/** One guest NIC: its tap, MAC and address on a VLAN. */
export const FirewallPort = z.strictObject({
  tap: IfName,
  mac: Mac,
  /** null: the port may send ARP and IP from no address at all. */
  ip: Ip.nullable(),
  vlan: VlanId,
});
export type FirewallPort = z.infer<typeof FirewallPort>;

/** A published port: `proto hostPort` on the host goes to `ip:guestPort`. */
export const FirewallForward = z.strictObject({
  proto: z.enum(["tcp", "udp"]),
  hostPort: Port,
  ip: Ip,
  guestPort: Port,
});
export type FirewallForward = z.infer<typeof FirewallForward>;

/** A source or destination of a user rule. */
export const RuleEnd = z.union([
  z.strictObject({ cidr: AnyCidr }),
  z.strictObject({ vlan: VlanId }),
]);
export type RuleEnd = z.infer<typeof RuleEnd>;

/** A user rule, placed before KaOS' default accepts of its chain. */
export const FirewallRule = z.strictObject({
  id: z.number().int().min(1),
  chain: z.enum(["input", "forward"]),
  action: z.enum(["accept", "drop", "reject"]),
  proto: z.enum(["tcp", "udp", "icmp"]).nullable(),
  from: RuleEnd.nullable(),
  to: RuleEnd.nullable(),
  /** Destination ports (tcp/udp only). */
  ports: z.strictObject({ from: Port, to: Port }).nullable(),
  note: z.string().max(120),
});
export type FirewallRule = z.infer<typeof FirewallRule>;

/** Everything the firewall is rendered from. */
export const FirewallInput = z.strictObject({
  /** The host's uplink interface (NAT leaves through it), or null when there is none. */
  uplink: IfName.nullable(),
  /** The AppQueue CLI's SSH port. */
  mgmtPort: Port,
  /** Sources allowed to reach mgmtPort; empty: any source outside the guest VLANs. */
  mgmt: z.array(AnyCidr),
  vlans: z.array(FirewallVlan),
  /** VLAN pairs routed to each other (both directions). */
  routes: z.array(z.strictObject({ a: VlanId, b: VlanId })),
  ports: z.array(FirewallPort),
  forwards: z.array(FirewallForward),
  rules: z.array(FirewallRule),
});
export type FirewallInput = z.infer<typeof FirewallInput>;

/** What the renderer produced. */
export interface RenderedFirewall {
  /** The nft script (for `nft -f -`). */
  text: string;
  /** What the operator should know (e.g. management open to any source). */
  warnings: string[];
  /** Whether IPv4 forwarding is needed (a VLAN NATs or routes, or a port is published). */
  forwarding: boolean;
}

/** Names of the named counters of the bridge table, for tests and `firewall status`. */
export const BRIDGE_COUNTERS = [
  "spoof_mac",
  "spoof_arp",
  "spoof_ip",
  "dhcp_server",
  "bad_ethertype",
  "isolated",
] as const;
/** Names of the named counters of the inet table. */
export const INET_COUNTERS = ["input_drop", "forward_drop", "mgmt_accept"] as const;

/** The warning shown while management is open to any source outside the guest VLANs. */
export function openMgmtWarning(port: number): string {
  return `TCP ${port} (the AppQueue CLI) is open to any source outside the guest VLANs; ` +
    "limit it with `firewall mgmt add CIDR`";
}

/** Every VLAN's bridge is named with this prefix (netmgr/names.ts: kbr<ID>). */
const BRIDGE_PREFIX = "kbr";

/** Renders the firewall; throws a TypeError (a bug upstream) when the input is inconsistent. */
export function renderFirewall(input: FirewallInput): RenderedFirewall {
  const fw = FirewallInput.parse(input);
  const warnings: string[] = [];
  const vlanById = new Map(fw.vlans.map((v) => [v.id, v]));
  for (const v of fw.vlans) {
    parseCidr(v.cidr);
    if (!v.bridge.startsWith(BRIDGE_PREFIX)) {
      throw new TypeError(`VLAN ${v.id}'s bridge ${v.bridge} lacks the ${BRIDGE_PREFIX} prefix`);
    }
  }
  for (const p of fw.ports) {
    const v = vlanById.get(p.vlan);
    if (!v) throw new TypeError(`port ${p.tap} is on VLAN ${p.vlan}, which is not in the input`);
    if (p.ip !== null && !contains(parseCidr(v.cidr), parseIpv4(p.ip))) {
      throw new TypeError(`port ${p.tap} has ${p.ip}, outside VLAN ${v.id} (${v.cidr})`);
    }
  }
  const bridgeOf = (id: number) => {
    const v = vlanById.get(id);
    if (!v) throw new TypeError(`VLAN ${id} is not in the input`);
    return v.bridge;
  };

  const natVlans = fw.vlans.filter((v) => v.nat);
  if (natVlans.length > 0 && fw.uplink === null) {
    warnings.push(
      `VLAN(s) ${natVlans.map((v) => v.id).join(", ")} NAT, but there is no uplink to NAT out of`,
    );
  }
  if (fw.mgmt.length === 0) warnings.push(openMgmtWarning(fw.mgmtPort));

  const routePairs = fw.routes.flatMap(({ a, b }) => [
    `${q(bridgeOf(a))} . ${q(bridgeOf(b))}`,
    `${q(bridgeOf(b))} . ${q(bridgeOf(a))}`,
  ]);
  const published = fw.forwards.map((f) => `${f.proto} . ${f.hostPort} : ${f.ip} . ${f.guestPort}`);
  const dupes = duplicates(fw.forwards.map((f) => `${f.proto} ${f.hostPort}`));
  if (dupes.length > 0) throw new TypeError(`host port published twice: ${dupes.join(", ")}`);
  const uplink = fw.uplink === null ? null : q(fw.uplink);

  const inet = [
    set("mgmt", "ipv4_addr", fw.mgmt.map(normCidr), { interval: true }),
    set("nat_ifs", "ifname", natVlans.map((v) => q(v.bridge))),
    set("routes", "ifname . ifname", routePairs),
    map("published", "inet_proto . inet_service : ipv4_addr . inet_service", published),
    ...INET_COUNTERS.map((c) => `counter ${c} {}`),
    chain("input", "type filter hook input priority filter; policy drop;", [
      "iif lo accept",
      "ct state established,related accept",
      "ct state invalid drop",
      "icmp type { echo-request, destination-unreachable, time-exceeded, parameter-problem } " +
      "limit rate 100/second burst 50 packets accept",
      "icmpv6 type { destination-unreachable, packet-too-big, time-exceeded, parameter-problem, " +
      "echo-request, nd-router-advert, nd-neighbor-solicit, nd-neighbor-advert } accept",
      "jump user_input",
      fw.mgmt.length === 0
        ? `tcp dport ${fw.mgmtPort} iifname != "${BRIDGE_PREFIX}*" counter name mgmt_accept accept`
        : `tcp dport ${fw.mgmtPort} ip saddr @mgmt counter name mgmt_accept accept`,
      "counter name input_drop",
    ]),
    chain(
      "user_input",
      "",
      fw.rules.filter((r) => r.chain === "input").map((r) => userRule(r, fw)),
    ),
    chain("forward", "type filter hook forward priority filter; policy drop;", [
      "ct state established,related accept",
      "ct state invalid drop",
      "jump user_forward",
      "ct status dnat accept",
      "iifname . oifname @routes accept",
      ...(uplink === null ? [] : [`iifname @nat_ifs oifname ${uplink} accept`]),
      "counter name forward_drop",
    ]),
    chain(
      "user_forward",
      "",
      fw.rules.filter((r) => r.chain === "forward").map((r) => userRule(r, fw)),
    ),
    chain("prerouting", "type nat hook prerouting priority dstnat; policy accept;", [
      "fib daddr type local dnat ip to meta l4proto . th dport map @published",
    ]),
    // Connections the host opens to one of its own addresses (as Incus' forwards do in their
    // output chain). Not 127.0.0.0/8: a loopback source cannot leave through a bridge unless
    // route_localnet is on, which KaOS leaves off (docs/network.md, "Published ports").
    chain("output", "type nat hook output priority -100; policy accept;", [
      "ip daddr != 127.0.0.0/8 fib daddr type local dnat ip to meta l4proto . th dport map @published",
    ]),
    chain(
      "postrouting",
      "type nat hook postrouting priority srcnat; policy accept;",
      uplink === null ? [] : [`oifname ${uplink} iifname @nat_ifs masquerade`],
    ),
  ];

  const withIp = fw.ports.filter((p) => p.ip !== null);
  const isolated = fw.ports.filter((p) => vlanById.get(p.vlan)!.isolate);
  const bridge = [
    set("ports", "ifname", fw.ports.map((p) => q(p.tap))),
    set("port_mac", "ifname . ether_addr", fw.ports.map((p) => `${q(p.tap)} . ${p.mac}`)),
    set(
      "port_ip",
      "ifname . ether_addr . ipv4_addr",
      withIp.map((p) => `${q(p.tap)} . ${p.mac} . ${p.ip}`),
    ),
    set("isolated_ports", "ifname", isolated.map((p) => q(p.tap))),
    ...BRIDGE_COUNTERS.map((c) => `counter ${c} {}`),
    // Before everything else on the bridge (-200): a guest sends only as itself.
    chain("prerouting", "type filter hook prerouting priority -200; policy accept;", [
      "iifname != @ports accept",
      "iifname . ether saddr != @port_mac counter name spoof_mac drop",
      "ether type arp iifname . arp saddr ether . arp saddr ip @port_ip accept",
      "ether type arp counter name spoof_arp drop",
      "ether type ip udp sport 67 counter name dhcp_server drop",
      "ether type ip iifname . ether saddr . ip saddr @port_ip accept",
      "ether type ip counter name spoof_ip drop",
      "counter name bad_ethertype drop",
    ]),
    chain("forward", "type filter hook forward priority -200; policy accept;", [
      "iifname @isolated_ports oifname @isolated_ports counter name isolated drop",
    ]),
  ];

  const text = [
    "# KaOS firewall: replaces table inet kaos and table bridge kaos only",
    "table inet kaos {}",
    "delete table inet kaos",
    "table bridge kaos {}",
    "delete table bridge kaos",
    block("table inet kaos", inet),
    block("table bridge kaos", bridge),
  ].join("\n");
  return {
    text,
    warnings,
    forwarding: natVlans.length > 0 || fw.routes.length > 0 || fw.forwards.length > 0,
  };
}

/**
 * The built-in ruleset kattach falls back to when neither the configured nor the last confirmed
 * one loads: management stays reachable, guests get nothing.
 */
export function renderMinimalFirewall(mgmtPort: number): string {
  Port.parse(mgmtPort);
  return [
    "# KaOS minimal firewall: management reachable, everything else closed",
    "table inet kaos {}",
    "delete table inet kaos",
    "table bridge kaos {}",
    "delete table bridge kaos",
    block("table inet kaos", [
      chain("input", "type filter hook input priority filter; policy drop;", [
        "iif lo accept",
        "ct state established,related accept",
        "icmp type { echo-request, destination-unreachable, time-exceeded, parameter-problem } " +
        "accept",
        "icmpv6 type { destination-unreachable, packet-too-big, time-exceeded, " +
        "parameter-problem, echo-request, nd-router-advert, nd-neighbor-solicit, " +
        "nd-neighbor-advert } accept",
        `tcp dport ${mgmtPort} accept`,
      ]),
      chain("forward", "type filter hook forward priority filter; policy drop;", [
        "ct state established,related accept",
      ]),
    ]),
  ].join("\n");
}

function userRule(r: FirewallRule, fw: FirewallInput): string {
  const words: string[] = [];
  const end = (e: RuleEnd, side: "from" | "to") => {
    if ("cidr" in e) return `ip ${side === "from" ? "saddr" : "daddr"} ${normCidr(e.cidr)}`;
    const v = fw.vlans.find((x) => x.id === e.vlan);
    if (!v) throw new TypeError(`rule ${r.id} names VLAN ${e.vlan}, which is not in the input`);
    if (side === "from") return `iifname ${q(v.bridge)}`;
    // To a VLAN: in input, the host's own address on it; in forward, out of its switch.
    return r.chain === "input" ? `ip daddr ${v.gateway}` : `oifname ${q(v.bridge)}`;
  };
  if (r.from) words.push(end(r.from, "from"));
  if (r.to) words.push(end(r.to, "to"));
  if (r.proto === "icmp") words.push("meta l4proto icmp");
  else if (r.proto !== null) {
    words.push(`meta l4proto ${r.proto}`);
    if (r.ports) {
      const range = r.ports.from === r.ports.to
        ? `${r.ports.from}`
        : `${r.ports.from}-${r.ports.to}`;
      words.push(`th dport ${range}`);
    }
  } else if (r.ports) throw new TypeError(`rule ${r.id} has ports but no protocol`);
  words.push("counter");
  words.push(r.action === "reject" ? "reject with icmpx admin-prohibited" : r.action);
  words.push(`comment ${q(`rule ${r.id}${r.note ? `: ${r.note}` : ""}`.replace(/["\\]/g, "'"))}`);
  return words.join(" ");
}

function normCidr(s: string): string {
  const c = parseCidr(s, { minPrefix: 0, maxPrefix: 32 });
  return formatCidr(c);
}

function q(name: string): string {
  return `"${name}"`;
}

function set(
  name: string,
  type: string,
  elements: string[],
  options: { interval?: boolean } = {},
): string {
  return elementsBlock(`set ${name}`, [
    `type ${type}`,
    ...(options.interval ? ["flags interval", "auto-merge"] : []),
  ], elements);
}

function map(name: string, type: string, elements: string[]): string {
  return elementsBlock(`map ${name}`, [`type ${type}`], elements);
}

function elementsBlock(head: string, props: string[], elements: string[]): string {
  const sorted = [...new Set(elements)].sort();
  const body = [...props];
  if (sorted.length > 0) {
    body.push(`elements = {\n${sorted.map((e) => `\t\t\t${e},`).join("\n")}\n\t\t}`);
  }
  return `${head} {\n${body.map((l) => `\t\t${l}`).join("\n")}\n\t}`;
}

function chain(name: string, hook: string, rules: string[]): string {
  const lines = [...(hook ? [hook] : []), ...rules];
  return `chain ${name} {\n${lines.map((l) => `\t\t${l}`).join("\n")}\n\t}`;
}

function block(head: string, items: string[]): string {
  return `${head} {\n${items.map((i) => `\t${i}`).join("\n\n")}\n}\n`;
}

function duplicates(xs: string[]): string[] {
  const seen = new Set<string>();
  const out = new Set<string>();
  for (const x of xs) (seen.has(x) ? out : seen).add(x);
  return [...out];
}
