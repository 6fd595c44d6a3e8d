import assert from "node:assert/strict";
import * as fc from "fast-check";
import { UserError } from "../lib/errors.ts";
import { userError } from "../lib/user_error_test_util.ts";
import { type AddressPlan, defaultPlan, validatePlan } from "../lib/address_plan.ts";
import { allocateAddress, poolSize, poolUsage } from "./ipam.ts";
import { formatIpv4, parseIpv4 } from "../lib/ipv4.ts";

const lan: AddressPlan = {
  cidr: "10.0.10.0/24",
  gateway: "10.0.10.1",
  poolStart: "10.0.10.2",
  poolEnd: "10.0.10.254",
};

Deno.test("defaultPlan: gateway is the first host, the pool the rest", () => {
  assert.deepEqual(defaultPlan("10.0.10.0/24"), lan);
  assert.deepEqual(defaultPlan("192.168.7.8/30"), {
    cidr: "192.168.7.8/30",
    gateway: "192.168.7.9",
    poolStart: "192.168.7.10",
    poolEnd: "192.168.7.10",
  });
  assert.deepEqual(defaultPlan("10.0.0.0/8"), {
    cidr: "10.0.0.0/8",
    gateway: "10.0.0.1",
    poolStart: "10.0.0.2",
    poolEnd: "10.255.255.254",
  });
  assert.equal(poolSize(defaultPlan("10.0.10.0/24")), 253);
  assert.equal(poolSize(defaultPlan("10.0.0.0/30")), 1);
  assert.equal(poolSize(defaultPlan("10.0.0.0/8")), 2 ** 24 - 3);
  assert.match(userError(() => defaultPlan("10.0.10.0/31")).message, /from 8 to 30/);
});

Deno.test("validatePlan refuses incoherent plans with clear messages and hints", () => {
  validatePlan(lan);
  validatePlan({ ...lan, gateway: "10.0.10.100" }); // inside the pool: allowed, never handed out
  const cases: [Partial<AddressPlan>, string, string][] = [
    [
      { gateway: "10.0.11.1" },
      "Invalid gateway 10.0.11.1: it must be a host address inside 10.0.10.0/24",
      "choose an address from 10.0.10.1-10.0.10.254, usually 10.0.10.1",
    ],
    [
      { gateway: "10.0.10.0" },
      "Invalid gateway 10.0.10.0: it must be a host address inside 10.0.10.0/24",
      "choose an address from 10.0.10.1-10.0.10.254, usually 10.0.10.1",
    ],
    [
      { gateway: "10.0.10.255" },
      "Invalid gateway 10.0.10.255: it must be a host address inside 10.0.10.0/24",
      "choose an address from 10.0.10.1-10.0.10.254, usually 10.0.10.1",
    ],
    [
      { poolStart: "10.0.10.0" },
      "Invalid pool start 10.0.10.0: it must be a host address inside 10.0.10.0/24",
      "choose a pool within 10.0.10.1-10.0.10.254",
    ],
    [
      { poolEnd: "10.0.10.255" },
      "Invalid pool end 10.0.10.255: it must be a host address inside 10.0.10.0/24",
      "choose a pool within 10.0.10.1-10.0.10.254",
    ],
    [
      { poolEnd: "10.0.11.7" },
      "Invalid pool end 10.0.11.7: it must be a host address inside 10.0.10.0/24",
      "choose a pool within 10.0.10.1-10.0.10.254",
    ],
    [
      { poolStart: "10.0.10.200", poolEnd: "10.0.10.100" },
      "Invalid pool 10.0.10.200-10.0.10.100: the start is after the end",
      "swap the start and the end",
    ],
    [
      { cidr: "10.0.10.0/32" },
      'Invalid CIDR "10.0.10.0/32": the prefix ("32") must be a whole number from 8 to 30',
      "write a network address and a prefix from 8 to 30, e.g. 10.0.10.0/24",
    ],
    [
      { gateway: "10.0.10.1 " },
      'Invalid IPv4 address "10.0.10.1 ": octet 4 ("1 ") is not a decimal number',
      "write four numbers 0-255 separated by dots, without leading zeros, e.g. 10.0.10.1",
    ],
  ];
  for (const [change, message, hint] of cases) {
    const err = userError(() => validatePlan({ ...lan, ...change }));
    assert.equal(err.message, message);
    assert.equal(err.hint, hint);
  }
});

Deno.test("allocateAddress takes the lowest free address, skipping the gateway", () => {
  assert.equal(allocateAddress(lan, []), "10.0.10.2");
  assert.equal(allocateAddress(lan, ["10.0.10.2", "10.0.10.3", "10.0.10.5"]), "10.0.10.4");
  assert.equal(allocateAddress(lan, new Set([parseIpv4("10.0.10.2")])), "10.0.10.3");
  const wide = { ...lan, poolStart: "10.0.10.1" }; // gateway inside the pool
  assert.equal(allocateAddress(wide, []), "10.0.10.2");
  assert.equal(poolSize(wide), 253);
  // used addresses outside the pool or the subnet do not matter
  assert.equal(allocateAddress(lan, ["10.0.11.2", "10.0.10.1"]), "10.0.10.2");
});

Deno.test("allocateAddress reports an exhausted pool with a hint", () => {
  const tiny = defaultPlan("10.0.0.4/30");
  assert.equal(allocateAddress(tiny, []), "10.0.0.6");
  const err = userError(() => allocateAddress(tiny, ["10.0.0.6"]));
  assert.equal(
    err.message,
    "Cannot allocate an address on 10.0.0.4/30: the pool 10.0.0.6-10.0.0.6 is exhausted",
  );
  assert.equal(err.hint, "widen the pool with `vlan set`, or delete instances on this VLAN");
  assert.equal(err.code, "exhausted");
  const gwOnly = {
    cidr: "10.0.0.4/30",
    gateway: "10.0.0.5",
    poolStart: "10.0.0.5",
    poolEnd: "10.0.0.5",
  };
  assert.equal(poolSize(gwOnly), 0);
  assert.equal(userError(() => allocateAddress(gwOnly, [])).code, "exhausted");
});

Deno.test("allocateAddress reserves a wanted address or says why not", () => {
  const plan = { ...lan, poolStart: "10.0.10.100", poolEnd: "10.0.10.200" };
  assert.equal(allocateAddress(plan, ["10.0.10.100"], { want: "10.0.10.150" }), "10.0.10.150");
  assert.equal(allocateAddress(plan, [], { want: "10.0.10.200" }), "10.0.10.200");
  const pool = "choose an address in the pool 10.0.10.100-10.0.10.200";
  const cases: [string, string, string, string][] = [
    ["10.0.11.5", "it is outside 10.0.10.0/24", pool, "invalid"],
    ["10.0.10.0", "it is the network address of 10.0.10.0/24", pool, "invalid"],
    ["10.0.10.255", "it is the broadcast address of 10.0.10.0/24", pool, "invalid"],
    ["10.0.10.1", "it is the gateway of 10.0.10.0/24", pool, "invalid"],
    [
      "10.0.10.99",
      "it is outside the pool 10.0.10.100-10.0.10.200",
      pool + ", or widen it with `vlan set`",
      "invalid",
    ],
    [
      "10.0.10.120",
      "it is already in use",
      "choose another address, or leave it out to get the next free one",
      "conflict",
    ],
  ];
  for (const [want, why, hint, code] of cases) {
    const err = userError(() => allocateAddress(plan, ["10.0.10.120"], { want }));
    assert.equal(err.message, `Cannot reserve ${want}: ${why}`);
    assert.equal(err.hint, hint);
    assert.equal(err.code, code);
  }
  assert.match(
    userError(() => allocateAddress(plan, [], { want: "10.0.10.1000" })).message,
    /above 255/,
  );
});

Deno.test("poolUsage counts distinct used addresses inside the pool only", () => {
  assert.deepEqual(poolUsage(lan, []), { size: 253, used: 0, free: 253 });
  assert.deepEqual(
    poolUsage(lan, ["10.0.10.2", "10.0.10.2", "10.0.10.1", "10.0.11.3", "10.0.10.254"]),
    { size: 253, used: 2, free: 251 },
  );
});

Deno.test("a /16 pool with 65k used addresses: lowest free, reservation, exhaustion", () => {
  const plan = defaultPlan("172.16.0.0/16");
  const used = new Set<number>();
  for (let ip = parseIpv4("172.16.0.2"); ip <= parseIpv4("172.16.255.254"); ip++) used.add(ip);
  used.delete(parseIpv4("172.16.200.7"));
  assert.equal(allocateAddress(plan, used), "172.16.200.7");
  assert.equal(allocateAddress(plan, used, { want: "172.16.200.7" }), "172.16.200.7");
  assert.deepEqual(poolUsage(plan, used), { size: 65533, used: 65532, free: 1 });
  used.add(parseIpv4("172.16.200.7"));
  assert.equal(userError(() => allocateAddress(plan, used)).code, "exhausted");
  // a /8 pool allocates just as quickly when few addresses are used
  assert.equal(allocateAddress(defaultPlan("10.0.0.0/8"), ["10.0.0.2"]), "10.0.0.3");
});

/** A random small plan (prefix 24-30) so that pools can be exhausted and checked by brute force. */
const planArb = fc.record({
  base: fc.nat({ max: 0xffffffff }),
  prefix: fc.integer({ min: 24, max: 30 }),
  gw: fc.nat(),
  a: fc.nat(),
  b: fc.nat(),
}).map(({ base, prefix, gw, a, b }) => {
  const size = 2 ** (32 - prefix);
  const network = base - (base % size);
  const host = (n: number) => formatIpv4(network + 1 + (n % (size - 2)));
  const [lo, hi] = a % (size - 2) <= b % (size - 2) ? [a, b] : [b, a];
  return {
    plan: {
      cidr: `${formatIpv4(network)}/${prefix}`,
      gateway: host(gw),
      poolStart: host(lo),
      poolEnd: host(hi),
    },
    network,
    size,
  };
});

const opArb = fc.oneof(
  { weight: 4, arbitrary: fc.constant({ kind: "next" as const }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant("want" as const), n: fc.integer() }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant("release" as const), n: fc.nat() }) },
);

Deno.test("property: allocate/release sequences keep the IPAM invariants", () => {
  fc.assert(
    fc.property(
      planArb,
      fc.array(opArb, { maxLength: 120 }),
      fc.boolean(),
      ({ plan, network, size }, ops, asNumbers) => {
        validatePlan(plan);
        const gateway = parseIpv4(plan.gateway);
        const start = parseIpv4(plan.poolStart);
        const end = parseIpv4(plan.poolEnd);
        const broadcast = network + size - 1;
        const used: string[] = [];
        const view = () => asNumbers ? new Set(used.map(parseIpv4)) : used;
        const free = () => {
          const out: number[] = [];
          for (let ip = start; ip <= end; ip++) {
            if (ip !== gateway && !used.includes(formatIpv4(ip))) out.push(ip);
          }
          return out;
        };
        for (const op of ops) {
          const freeBefore = free();
          if (op.kind === "release") {
            if (used.length > 0) used.splice(op.n % used.length, 1);
          } else if (op.kind === "next") {
            try {
              const ip = allocateAddress(plan, view());
              assert.equal(ip, formatIpv4(freeBefore[0])); // the lowest free address
              used.push(ip);
            } catch (err) {
              assert.ok(err instanceof UserError && err.code === "exhausted");
              assert.equal(freeBefore.length, 0);
            }
          } else {
            // wanted addresses range a little outside the subnet on either side
            const want = formatIpv4((network + (op.n % (size + 4)) - 2 + 2 ** 32) % 2 ** 32);
            try {
              assert.equal(allocateAddress(plan, view(), { want }), want);
              assert.ok(freeBefore.includes(parseIpv4(want)));
              used.push(want);
            } catch (err) {
              if (!(err instanceof UserError)) throw err;
              assert.ok(!freeBefore.includes(parseIpv4(want)));
              assert.equal(err.code, used.includes(want) ? "conflict" : "invalid");
            }
          }
          assert.equal(new Set(used).size, used.length);
          for (const s of used) {
            const ip = parseIpv4(s);
            assert.ok(ip >= start && ip <= end);
            assert.ok(ip !== gateway && ip !== network && ip !== broadcast);
          }
          const usage = poolUsage(plan, view());
          assert.equal(usage.used, used.length);
          assert.equal(usage.free, free().length);
        }
      },
    ),
    { numRuns: 300 },
  );
});
