/**
 * Networking for guests: IPv4 address math, per-VLAN address management, MAC allocation, the
 * names of the host links KaOS owns and the plan, host state and diff of those links.
 * Everything here is pure; the store in kattach persists allocations.
 */
export {
  broadcast,
  type Cidr,
  type CidrOptions,
  contains,
  formatCidr,
  formatIpv4,
  Ipv4Address,
  Ipv4Cidr,
  MAX_PREFIX,
  MIN_PREFIX,
  netmask,
  parseCidr,
  parseIpv4,
} from "../lib/ipv4.ts";
export { AddressPlan, defaultPlan, validatePlan } from "../lib/address_plan.ts";
export {
  allocateAddress,
  type AllocateOptions,
  poolSize,
  poolUsage,
  type UsedAddresses,
} from "./ipam.ts";
export {
  allocateMac,
  isKaosMac,
  KAOS_MAC_COUNT,
  KAOS_MAC_PREFIX,
  MacAddress,
  macFromIndex,
  macIndex,
  parseMac,
} from "./mac.ts";
export {
  bridgeMac,
  bridgeName,
  IFNAME_MAX,
  isKaosLink,
  isKaosLinkName,
  KAOS_ALIAS_PREFIX,
  kaosAlias,
  tapName,
  vlanLinkName,
} from "./names.ts";
export {
  type DesiredLink,
  type DesiredState,
  hostIsRouter,
  type NetworkConfig,
  planLinks,
  type PlanNic,
  type PlanVlan,
} from "./link_plan.ts";
export {
  type HostLink,
  type HostReads,
  type HostState,
  hostStateFromDump,
  onlyLinks,
  parseHostState,
  parseIpLinks,
} from "./link_state.ts";
export { diffLinks, type LinkDiff, renderBatch } from "./link_diff.ts";
export {
  BRIDGE_COUNTERS,
  FirewallForward,
  FirewallInput,
  FirewallPort,
  FirewallRule,
  FirewallVlan,
  INET_COUNTERS,
  openMgmtWarning,
  type RenderedFirewall,
  renderFirewall,
  renderMinimalFirewall,
  RuleEnd,
} from "./firewall.ts";
export { syntheticFirewall } from "./firewall_synthetic.ts";
