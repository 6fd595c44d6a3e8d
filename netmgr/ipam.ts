/**
 * IP address management for one VLAN. Pure: the caller passes the addresses already in use
 * (one store row per allocated address) and stores what it gets back.
 *
 * A plan is a subnet, its gateway (the host's address on the VLAN bridge) and a pool of
 * addresses handed to guests. The gateway may lie inside the pool (so a pool can be widened
 * to the whole subnet without fuss) but is never handed out.
 */
import { UserError } from "../lib/errors.ts";
import { type AddressPlan, type ResolvedPlan, resolvePlan } from "../lib/address_plan.ts";
import { contains, formatCidr, formatIpv4, parseIpv4 } from "../lib/ipv4.ts";
import { usedSet } from "./_used.ts";

/** Used addresses: strings, or a set of integers as from {@linkcode parseIpv4}. */
export type UsedAddresses = Iterable<string> | ReadonlySet<number>;

function range(p: ResolvedPlan): string {
  return `${formatIpv4(p.start)}-${formatIpv4(p.end)}`;
}

/** How many addresses the pool can hand out (the gateway excluded). */
export function poolSize(plan: AddressPlan): number {
  const p = resolvePlan(plan);
  const gatewayInPool = p.gateway >= p.start && p.gateway <= p.end;
  return p.end - p.start + 1 - (gatewayInPool ? 1 : 0);
}

/** Pool usage: addresses of `used` that fall in the pool, and how many remain free. */
export function poolUsage(
  plan: AddressPlan,
  used: UsedAddresses,
): { size: number; used: number; free: number } {
  const p = resolvePlan(plan);
  const size = p.end - p.start + 1 - (p.gateway >= p.start && p.gateway <= p.end ? 1 : 0);
  let inPool = 0;
  for (const ip of usedSet(used, parseIpv4)) {
    if (ip >= p.start && ip <= p.end && ip !== p.gateway) inPool++;
  }
  return { size, used: inPool, free: size - inPool };
}

/** Options of {@linkcode allocateAddress}. */
export interface AllocateOptions {
  /** Reserve this address instead of taking the lowest free one. */
  want?: string;
}

/**
 * Picks an address from the pool: the wanted one, or the lowest free one. Never the gateway,
 * network or broadcast address, nor one in `used`. O(|used|).
 */
export function allocateAddress(
  plan: AddressPlan,
  used: UsedAddresses,
  options: AllocateOptions = {},
): string {
  const p = resolvePlan(plan);
  const taken = usedSet(used, parseIpv4);
  if (options.want !== undefined) return reserve(p, taken, options.want);
  // Each step past a taken address consumes one element of `taken` (or the gateway), so the
  // scan ends within |taken| + 2 steps.
  for (let ip = p.start; ip <= p.end; ip++) {
    if (ip !== p.gateway && !taken.has(ip)) return formatIpv4(ip);
  }
  throw new UserError(
    `Cannot allocate an address on ${formatCidr(p.cidr)}: the pool ${range(p)} is exhausted`,
    {
      code: "exhausted",
      hint: "widen the pool with `vlan set`, or delete instances on this VLAN",
    },
  );
}

function reserve(p: ResolvedPlan, taken: ReadonlySet<number>, want: string): string {
  const ip = parseIpv4(want);
  const net = formatCidr(p.cidr);
  const refuse = (why: string, hint: string, code = "invalid") =>
    new UserError(`Cannot reserve ${want}: ${why}`, { hint, code });
  const pick = `choose an address in the pool ${range(p)}`;
  if (!contains(p.cidr, ip)) throw refuse(`it is outside ${net}`, pick);
  if (ip === p.cidr.network) throw refuse(`it is the network address of ${net}`, pick);
  if (ip === p.broadcast) throw refuse(`it is the broadcast address of ${net}`, pick);
  if (ip === p.gateway) throw refuse(`it is the gateway of ${net}`, pick);
  if (ip < p.start || ip > p.end) {
    throw refuse(`it is outside the pool ${range(p)}`, `${pick}, or widen it with \`vlan set\``);
  }
  if (taken.has(ip)) {
    throw refuse(
      "it is already in use",
      "choose another address, or leave it out to get the next free one",
      "conflict",
    );
  }
  return want;
}
