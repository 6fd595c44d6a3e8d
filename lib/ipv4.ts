/**
 * IPv4 address math. Addresses are unsigned 32-bit integers (`10.0.0.1` is `0x0a000001`);
 * strings are parsed strictly (four decimal octets 0-255, no leading zeros) so that every
 * address has exactly one spelling and can be compared as text in the store. In lib so that
 * netmgr (IPAM, firewall) and the IPC schemas, with which the CLI checks a command's words before
 * kattach is asked (cli/word_check.ts), share one parser.
 */
import { z } from "zod";
import { UserError } from "./errors.ts";
import { lazySchema } from "./lazy_schema.ts";

/**
 * Shortest VLAN prefix: a /8 holds 16M addresses, the largest private block (10/8); anything
 * wider makes no sense on one host.
 */
export const MIN_PREFIX = 8;
/**
 * Longest VLAN prefix: a /30 holds a network address, a gateway, one guest and a broadcast
 * address; a /31 or /32 leaves no room for a gateway plus a guest.
 */
export const MAX_PREFIX = 30;

/** A parsed CIDR block: the network address (host bits clear) and the prefix length. */
export interface Cidr {
  readonly network: number;
  readonly prefix: number;
}

const ADDRESS_HINT = "write four numbers 0-255 separated by dots, without leading zeros, " +
  "e.g. 10.0.10.1";

type Checked<T> = { ok: true; value: T } | { ok: false; problem: string; hint: string };

/**
 * The value of a strictly spelled dotted quad, or undefined for anything else (then
 * `checkIpv4` says what is wrong). One pass over the characters: `vlan list` and the firewall
 * parse tens of thousands of stored addresses, and the split-and-regex path was most of it.
 */
function fastIpv4(s: string): number | undefined {
  let value = 0;
  let octet = 0;
  let digits = 0;
  let dots = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c === 46) {
      if (digits === 0 || dots === 3) return undefined;
      value = value * 256 + octet;
      octet = 0;
      digits = 0;
      dots++;
    } else if (c >= 48 && c <= 57) {
      if (digits === 1 && octet === 0) return undefined; // a leading zero
      octet = octet * 10 + (c - 48);
      if (++digits > 3 || octet > 255) return undefined;
    } else {
      return undefined;
    }
  }
  if (dots !== 3 || digits === 0) return undefined;
  return value * 256 + octet;
}

function checkIpv4(s: string): Checked<number> {
  const fast = fastIpv4(s);
  if (fast !== undefined) return { ok: true, value: fast };
  const parts = s.split(".");
  if (parts.length !== 4) {
    return { ok: false, problem: `expected 4 octets, found ${parts.length}`, hint: ADDRESS_HINT };
  }
  let value = 0;
  for (const [i, part] of parts.entries()) {
    let problem = "";
    if (!/^[0-9]+$/.test(part)) problem = `octet ${i + 1} ("${part}") is not a decimal number`;
    else if (part.length > 1 && part[0] === "0") {
      problem = `octet ${i + 1} ("${part}") has a leading zero`;
    } else if (Number(part) > 255) problem = `octet ${i + 1} (${part}) is above 255`;
    if (problem) return { ok: false, problem, hint: ADDRESS_HINT };
    value = value * 256 + Number(part);
  }
  return { ok: true, value };
}

function checkCidr(
  s: string,
  { strict = true, minPrefix = MIN_PREFIX, maxPrefix = MAX_PREFIX }: CidrOptions = {},
): Checked<Cidr> {
  const hint = `write a network address and a prefix from ${minPrefix} to ${maxPrefix}, ` +
    "e.g. 10.0.10.0/24";
  const slash = s.indexOf("/");
  if (slash < 0) return { ok: false, problem: "the /prefix is missing", hint };
  const address = checkIpv4(s.slice(0, slash));
  if (!address.ok) return address;
  const prefixText = s.slice(slash + 1);
  const prefix = Number(prefixText);
  if (!/^(0|[1-9][0-9]?)$/.test(prefixText) || prefix < minPrefix || prefix > maxPrefix) {
    return {
      ok: false,
      problem:
        `the prefix ("${prefixText}") must be a whole number from ${minPrefix} to ${maxPrefix}`,
      hint,
    };
  }
  const network = (address.value & netmask(prefix)) >>> 0;
  if (strict && network !== address.value) {
    return {
      ok: false,
      problem: "host bits are set after the prefix",
      hint: `did you mean ${formatIpv4(network)}/${prefix}?`,
    };
  }
  return { ok: true, value: { network, prefix } };
}

/** Parses a dotted-quad address strictly into an unsigned 32-bit integer. */
export function parseIpv4(s: string): number {
  const r = checkIpv4(s);
  if (!r.ok) throw new UserError(`Invalid IPv4 address "${s}": ${r.problem}`, { hint: r.hint });
  return r.value;
}

/** Formats an unsigned 32-bit integer as a dotted quad. */
export function formatIpv4(ip: number): string {
  if (!Number.isInteger(ip) || ip < 0 || ip > 0xffffffff) {
    throw new RangeError(`Not an unsigned 32-bit IPv4 address: ${ip}`);
  }
  return `${ip >>> 24}.${(ip >>> 16) & 255}.${(ip >>> 8) & 255}.${ip & 255}`;
}

/** Options of {@linkcode parseCidr}. */
export interface CidrOptions {
  /** Refuse host bits after the prefix (`10.0.10.5/24`); otherwise clear them. Default true. */
  strict?: boolean;
  /** Shortest accepted prefix; default {@linkcode MIN_PREFIX}. */
  minPrefix?: number;
  /** Longest accepted prefix; default {@linkcode MAX_PREFIX}. */
  maxPrefix?: number;
}

/** Parses `10.0.10.0/24`; by default the prefix must suit a VLAN (8-30) and host bits be clear. */
export function parseCidr(s: string, options: CidrOptions = {}): Cidr {
  const r = checkCidr(s, options);
  if (!r.ok) throw new UserError(`Invalid CIDR "${s}": ${r.problem}`, { hint: r.hint });
  return r.value;
}

/** Formats a CIDR block as `10.0.10.0/24`. */
export function formatCidr(cidr: Cidr): string {
  return `${formatIpv4(cidr.network)}/${cidr.prefix}`;
}

/** The netmask of a prefix length as an integer (`24` → `0xffffff00`). */
export function netmask(prefix: number): number {
  return prefix === 0 ? 0 : (0xffffffff << (32 - prefix)) >>> 0;
}

/** The broadcast (last) address of a block. */
export function broadcast(cidr: Cidr): number {
  return (cidr.network | ~netmask(cidr.prefix)) >>> 0;
}

/** True when the address lies inside the block (network and broadcast included). */
export function contains(cidr: Cidr, ip: number): boolean {
  return ((ip & netmask(cidr.prefix)) >>> 0) === cidr.network;
}

/** A strictly spelled IPv4 address string, for use inside other zod schemas. */
export const Ipv4Address = lazySchema(() =>
  z.string().superRefine((s, ctx) => {
    const r = checkIpv4(s);
    if (!r.ok) ctx.addIssue({ code: "custom", message: `not an IPv4 address: ${r.problem}` });
  })
);

/** A VLAN subnet string such as `10.0.10.0/24`: prefix 8-30, host bits clear. */
export const Ipv4Cidr = lazySchema(() =>
  z.string().superRefine((s, ctx) => {
    const r = checkCidr(s);
    if (!r.ok) {
      ctx.addIssue({ code: "custom", message: `not a VLAN subnet: ${r.problem}; ${r.hint}` });
    }
  })
);
