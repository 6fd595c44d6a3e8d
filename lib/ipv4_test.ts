import assert from "node:assert/strict";
import * as fc from "fast-check";
import { z } from "zod";
import { userError } from "../lib/user_error_test_util.ts";
import {
  broadcast,
  contains,
  formatCidr,
  formatIpv4,
  Ipv4Address,
  Ipv4Cidr,
  netmask,
  parseCidr,
  parseIpv4,
} from "./ipv4.ts";

Deno.test("parseIpv4 reads dotted quads as unsigned 32-bit integers", () => {
  assert.equal(parseIpv4("0.0.0.0"), 0);
  assert.equal(parseIpv4("10.0.10.1"), 0x0a000a01);
  assert.equal(parseIpv4("255.255.255.255"), 0xffffffff);
  assert.equal(parseIpv4("192.168.1.254"), 0xc0a801fe);
});

Deno.test("parseIpv4 refuses malformed addresses with a precise reason", () => {
  const cases: [string, string][] = [
    ["10.0.0", "expected 4 octets, found 3"],
    ["10.0.0.1.2", "expected 4 octets, found 5"],
    ["", "expected 4 octets, found 1"],
    ["10.0.0.256", "octet 4 (256) is above 255"],
    ["10.00.0.1", 'octet 2 ("00") has a leading zero'],
    ["010.0.0.1", 'octet 1 ("010") has a leading zero'],
    ["10..0.1", 'octet 2 ("") is not a decimal number'],
    ["10.0.0.-1", 'octet 4 ("-1") is not a decimal number'],
    ["10.0.0. 1", 'octet 4 (" 1") is not a decimal number'],
    ["10.0.0.0x1", 'octet 4 ("0x1") is not a decimal number'],
    ["1e1.0.0.1", 'octet 1 ("1e1") is not a decimal number'],
    ["99999999999999999999.0.0.1", "octet 1 (99999999999999999999) is above 255"],
  ];
  for (const [input, reason] of cases) {
    const err = userError(() => parseIpv4(input));
    assert.equal(err.message, `Invalid IPv4 address "${input}": ${reason}`);
    assert.match(err.hint, /e\.g\. 10\.0\.10\.1/);
  }
});

Deno.test("formatIpv4 writes dotted quads and refuses non-addresses", () => {
  assert.equal(formatIpv4(0), "0.0.0.0");
  assert.equal(formatIpv4(0xffffffff), "255.255.255.255");
  assert.equal(formatIpv4(0x0a000a01), "10.0.10.1");
  assert.throws(() => formatIpv4(-1), RangeError);
  assert.throws(() => formatIpv4(2 ** 32), RangeError);
  assert.throws(() => formatIpv4(1.5), RangeError);
});

Deno.test("property: formatIpv4 and parseIpv4 are inverse", () => {
  fc.assert(fc.property(fc.nat({ max: 0xffffffff }), (n) => parseIpv4(formatIpv4(n)) === n));
});

Deno.test("property: parseIpv4 accepts exactly the strict spelling (its fast path included)", () => {
  const octet = "(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9][0-9]|[0-9])";
  const strict = new RegExp(`^${octet}\\.${octet}\\.${octet}\\.${octet}$`);
  const text = fc.string({ unit: fc.constantFrom(..."0123456789.a- "), maxLength: 18 });
  const dotted = fc.tuple(fc.nat(300), fc.nat(300), fc.nat(300), fc.nat(300), fc.boolean())
    .map(([a, b, c, d, zero]) => `${zero ? "0" : ""}${a}.${b}.${c}.${d}`);
  fc.assert(
    fc.property(fc.oneof(text, dotted), (s) => {
      let value: number | undefined;
      try {
        value = parseIpv4(s);
      } catch {
        value = undefined;
      }
      if (!strict.test(s)) return value === undefined;
      return value === s.split(".").reduce((v, o) => v * 256 + Number(o), 0);
    }),
    { numRuns: 5000 },
  );
});

Deno.test("parseCidr reads VLAN subnets, /8 to /30", () => {
  assert.deepEqual(parseCidr("10.0.10.0/24"), { network: 0x0a000a00, prefix: 24 });
  assert.deepEqual(parseCidr("10.0.0.0/8"), { network: 0x0a000000, prefix: 8 });
  assert.deepEqual(parseCidr("192.168.1.252/30"), { network: 0xc0a801fc, prefix: 30 });
  assert.equal(formatCidr(parseCidr("172.16.0.0/12")), "172.16.0.0/12");
});

Deno.test("parseCidr refuses bad prefixes and host bits", () => {
  const cases: [string, string][] = [
    ["10.0.10.0", "the /prefix is missing"],
    ["10.0.10.0/31", 'the prefix ("31") must be a whole number from 8 to 30'],
    ["10.0.0.0/7", 'the prefix ("7") must be a whole number from 8 to 30'],
    ["10.0.10.0/024", 'the prefix ("024") must be a whole number from 8 to 30'],
    ["10.0.10.0/", 'the prefix ("") must be a whole number from 8 to 30'],
    ["10.0.10.0/24/1", 'the prefix ("24/1") must be a whole number from 8 to 30'],
    ["10.0.10.256/24", "octet 4 (256) is above 255"],
    ["10.0.10.5/24", "host bits are set after the prefix"],
  ];
  for (const [input, reason] of cases) {
    assert.equal(userError(() => parseCidr(input)).message, `Invalid CIDR "${input}": ${reason}`);
  }
  assert.equal(userError(() => parseCidr("10.0.10.5/24")).hint, "did you mean 10.0.10.0/24?");
});

Deno.test("parseCidr options: non-strict clears host bits, prefix range widens", () => {
  assert.deepEqual(parseCidr("10.0.10.5/24", { strict: false }), {
    network: 0x0a000a00,
    prefix: 24,
  });
  assert.deepEqual(parseCidr("0.0.0.0/0", { minPrefix: 0, maxPrefix: 32 }), {
    network: 0,
    prefix: 0,
  });
  assert.deepEqual(parseCidr("10.0.0.7/32", { minPrefix: 0, maxPrefix: 32 }), {
    network: 0x0a000007,
    prefix: 32,
  });
});

Deno.test("netmask, broadcast and contains at the edge prefixes", () => {
  assert.equal(netmask(0), 0);
  assert.equal(netmask(8), 0xff000000);
  assert.equal(netmask(24), 0xffffff00);
  assert.equal(netmask(30), 0xfffffffc);
  assert.equal(netmask(32), 0xffffffff);
  const c30 = parseCidr("10.0.0.4/30");
  assert.equal(formatIpv4(broadcast(c30)), "10.0.0.7");
  assert.equal(contains(c30, parseIpv4("10.0.0.4")), true);
  assert.equal(contains(c30, parseIpv4("10.0.0.7")), true);
  assert.equal(contains(c30, parseIpv4("10.0.0.8")), false);
  assert.equal(contains(c30, parseIpv4("10.0.0.3")), false);
  const c8 = parseCidr("10.0.0.0/8");
  assert.equal(formatIpv4(broadcast(c8)), "10.255.255.255");
  assert.equal(contains(c8, parseIpv4("10.255.255.255")), true);
  assert.equal(contains(c8, parseIpv4("11.0.0.0")), false);
  const high = parseCidr("255.255.255.0/24");
  assert.equal(broadcast(high), 0xffffffff);
  assert.equal(contains(high, 0xffffffff), true);
});

Deno.test("property: contains agrees with network..broadcast", () => {
  fc.assert(fc.property(
    fc.nat({ max: 0xffffffff }),
    fc.integer({ min: 8, max: 30 }),
    fc.nat({ max: 0xffffffff }),
    (base, prefix, ip) => {
      const cidr = parseCidr(formatIpv4(base) + "/" + prefix, { strict: false });
      const inside = ip >= cidr.network && ip <= broadcast(cidr);
      return contains(cidr, ip) === inside &&
        broadcast(cidr) - cidr.network + 1 === 2 ** (32 - prefix);
    },
  ));
});

Deno.test("zod schemas validate strings inside other schemas with clear messages", () => {
  const Vlan = z.strictObject({ subnet: Ipv4Cidr, dns: Ipv4Address });
  assert.deepEqual(Vlan.parse({ subnet: "10.0.10.0/24", dns: "10.0.10.1" }), {
    subnet: "10.0.10.0/24",
    dns: "10.0.10.1",
  });
  const bad = Vlan.safeParse({ subnet: "10.0.10.1/24", dns: "10.0.10.01" });
  assert.equal(bad.success, false);
  assert.deepEqual(bad.error?.issues.map((i) => [i.path, i.message]), [
    [
      ["subnet"],
      "not a VLAN subnet: host bits are set after the prefix; did you mean 10.0.10.0/24?",
    ],
    [["dns"], 'not an IPv4 address: octet 4 ("01") has a leading zero'],
  ]);
  assert.equal(Ipv4Address.safeParse(7).success, false);
});
