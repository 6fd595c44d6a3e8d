/**
 * MAC addresses for guest NICs. KaOS hands out `0a:4b:53:xx:yy:zz` ("KS" after the first
 * octet), index 0 to 2^24-1 in the last three octets. The first octet 0x0a = 0b00001010 has
 * the locally-administered bit (0x02) set and the multicast bit (0x01) clear, so these never
 * clash with a vendor's burnt-in address. QEMU's own 52:54:00 is avoided on purpose, so a
 * KaOS MAC is recognisable on the wire. Pure: callers pass the MACs already in use.
 */
import { z } from "zod";
import { UserError } from "../lib/errors.ts";
import { usedSet } from "./_used.ts";

/** The prefix of every MAC that KaOS allocates. */
export const KAOS_MAC_PREFIX = "0a:4b:53";
/** How many MACs fit under the prefix (24 bits). */
export const KAOS_MAC_COUNT = 0x1000000;

const MAC_HINT = "write six pairs of hex digits separated by colons, e.g. 0a:4b:53:00:00:01";

function checkMac(s: string): string | undefined {
  if (!/^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/i.test(s)) {
    return "expected six hex pairs like 0a:4b:53:00:00:01";
  }
  if (parseInt(s.slice(0, 2), 16) & 1) return "the first octet has the multicast bit set";
  return undefined;
}

/** Parses a unicast MAC address; returns it in lower case. */
export function parseMac(s: string): string {
  const problem = checkMac(s);
  if (problem) throw new UserError(`Invalid MAC address "${s}": ${problem}`, { hint: MAC_HINT });
  return s.toLowerCase();
}

/** The KaOS MAC with the given index (0 to 2^24-1). */
export function macFromIndex(n: number): string {
  if (!Number.isInteger(n) || n < 0 || n >= KAOS_MAC_COUNT) {
    throw new RangeError(`MAC index out of range: ${n}`);
  }
  const hex = n.toString(16).padStart(6, "0");
  return `${KAOS_MAC_PREFIX}:${hex.slice(0, 2)}:${hex.slice(2, 4)}:${hex.slice(4)}`;
}

/** True when `s` is a well-formed MAC under the KaOS prefix (any case). */
export function isKaosMac(s: string): boolean {
  return checkMac(s) === undefined && s.slice(0, 8).toLowerCase() === KAOS_MAC_PREFIX;
}

/** The index of a KaOS MAC (inverse of {@linkcode macFromIndex}); undefined for other MACs. */
export function macIndex(mac: string): number | undefined {
  if (!isKaosMac(mac)) {
    parseMac(mac); // refuse garbage rather than ignore it
    return undefined;
  }
  return parseInt(mac.slice(9).replaceAll(":", ""), 16);
}

/**
 * The lowest unused KaOS MAC. `used` is every MAC on the host (foreign ones are ignored), or a
 * set of KaOS MAC indices; the same set always gives the same answer. O(|used|).
 */
export function allocateMac(used: Iterable<string> | ReadonlySet<number>): string {
  const taken = usedSet(used, macIndex);
  // Each step past a taken index consumes one element of `taken`: at most |taken| + 1 steps.
  for (let n = 0; n < KAOS_MAC_COUNT; n++) {
    if (!taken.has(n)) return macFromIndex(n);
  }
  throw new UserError(
    `Cannot allocate a MAC address: all ${KAOS_MAC_COUNT} addresses under ${KAOS_MAC_PREFIX} are in use`,
    { code: "exhausted", hint: "delete unused instances or NICs" },
  );
}

/** A unicast MAC address string, normalised to lower case, for use inside other zod schemas. */
export const MacAddress = z.string().superRefine((s, ctx) => {
  const problem = checkMac(s);
  if (problem) ctx.addIssue({ code: "custom", message: `not a MAC address: ${problem}` });
}).toLowerCase();
