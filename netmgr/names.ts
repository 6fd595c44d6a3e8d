/**
 * The names of the host links KaOS owns, and the mark that proves ownership. Every link KaOS
 * creates has a name with one of these prefixes and the alias {@linkcode KAOS_ALIAS_PREFIX}`…`;
 * a link without both is never touched. Linux link names hold at most 15 bytes (IFNAMSIZ - 1).
 */

/** The longest link name Linux accepts. */
export const IFNAME_MAX = 15;
/** Every link KaOS owns carries an alias starting with this. */
export const KAOS_ALIAS_PREFIX = "kaos:";

/** The bridge (virtual switch) of a VLAN: `kbr<ID>`, e.g. `kbr10`. */
export function bridgeName(vlan: number): string {
  return `kbr${checkVlanId(vlan)}`;
}

/**
 * The fixed MAC of a VLAN's bridge, `0a:4b:42:00:HH:LL` from the VLAN id: locally administered,
 * unicast, outside the guest range `0a:4b:53`, so the bridge keeps it as ports come and go.
 */
export function bridgeMac(vlan: number): string {
  const id = checkVlanId(vlan);
  const hex = (n: number) => n.toString(16).padStart(2, "0");
  return `0a:4b:42:00:${hex(id >> 8)}:${hex(id & 255)}`;
}

/** The 802.1Q sub-interface of the uplink carrying a VLAN tagged: `kvl<ID>`, e.g. `kvl10`. */
export function vlanLinkName(vlan: number): string {
  return `kvl${checkVlanId(vlan)}`;
}

/** The tap of one guest NIC, named from its MAC: `kt` + 12 hex digits, e.g. `kt0a4b53000001`. */
export function tapName(mac: string): string {
  if (!/^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/.test(mac)) {
    throw new TypeError(`tapName needs a lower-case MAC such as 0a:4b:53:00:00:01, not "${mac}"`);
  }
  return `kt${mac.replaceAll(":", "")}`;
}

/** The alias that marks a link as KaOS', e.g. `kaos:bridge:10`, `kaos:tap:web-1:0`. */
export function kaosAlias(kind: "bridge" | "vlan" | "tap", ...parts: (string | number)[]): string {
  return [`${KAOS_ALIAS_PREFIX}${kind}`, ...parts].join(":");
}

/** True when a link's name and alias both say KaOS owns it. */
export function isKaosLink(name: string, alias: string | undefined): boolean {
  return isKaosLinkName(name) && (alias ?? "").startsWith(KAOS_ALIAS_PREFIX);
}

/** True when a name has the form of a KaOS link name (whether or not such a link exists). */
export function isKaosLinkName(name: string): boolean {
  return /^(kbr|kvl|kt)[0-9a-f]+$/.test(name);
}

function checkVlanId(vlan: number): number {
  if (!Number.isInteger(vlan) || vlan < 1 || vlan > 4094) {
    throw new RangeError(`VLAN ids run from 1 to 4094, not ${vlan}`);
  }
  return vlan;
}
