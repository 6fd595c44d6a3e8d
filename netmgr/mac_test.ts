import assert from "node:assert/strict";
import * as fc from "fast-check";
import { z } from "zod";
import { userError } from "../lib/user_error_test_util.ts";
import {
  allocateMac,
  isKaosMac,
  KAOS_MAC_COUNT,
  KAOS_MAC_PREFIX,
  MacAddress,
  macFromIndex,
  macIndex,
  parseMac,
} from "./mac.ts";

const firstOctet = (mac: string) => parseInt(mac.slice(0, 2), 16);

Deno.test("the KaOS prefix is locally administered and unicast, and not QEMU's", () => {
  assert.equal(KAOS_MAC_PREFIX, "0a:4b:53");
  assert.equal(firstOctet(KAOS_MAC_PREFIX) & 0x02, 0x02);
  assert.equal(firstOctet(KAOS_MAC_PREFIX) & 0x01, 0);
  assert.equal(isKaosMac("52:54:00:12:34:56"), false);
});

Deno.test("macFromIndex and macIndex map 0..2^24-1 onto the prefix", () => {
  assert.equal(macFromIndex(0), "0a:4b:53:00:00:00");
  assert.equal(macFromIndex(1), "0a:4b:53:00:00:01");
  assert.equal(macFromIndex(0x123456), "0a:4b:53:12:34:56");
  assert.equal(macFromIndex(KAOS_MAC_COUNT - 1), "0a:4b:53:ff:ff:ff");
  assert.throws(() => macFromIndex(-1), RangeError);
  assert.throws(() => macFromIndex(KAOS_MAC_COUNT), RangeError);
  assert.throws(() => macFromIndex(0.5), RangeError);
  assert.equal(macIndex("0A:4B:53:12:34:56"), 0x123456);
  assert.equal(macIndex("52:54:00:12:34:56"), undefined);
  assert.match(userError(() => macIndex("nonsense")).message, /Invalid MAC address "nonsense"/);
});

Deno.test("parseMac accepts unicast MACs in any case and refuses the rest", () => {
  assert.equal(parseMac("0A:4B:53:AB:CD:EF"), "0a:4b:53:ab:cd:ef");
  assert.equal(parseMac("52:54:00:12:34:56"), "52:54:00:12:34:56");
  const cases: [string, string][] = [
    ["0a:4b:53:00:00", "expected six hex pairs like 0a:4b:53:00:00:01"],
    ["0a-4b-53-00-00-01", "expected six hex pairs like 0a:4b:53:00:00:01"],
    ["0a:4b:53:00:00:0g", "expected six hex pairs like 0a:4b:53:00:00:01"],
    ["0a:4b:53:00:00:001", "expected six hex pairs like 0a:4b:53:00:00:01"],
    ["01:00:5e:00:00:01", "the first octet has the multicast bit set"],
    ["ff:ff:ff:ff:ff:ff", "the first octet has the multicast bit set"],
  ];
  for (const [input, reason] of cases) {
    const err = userError(() => parseMac(input));
    assert.equal(err.message, `Invalid MAC address "${input}": ${reason}`);
    assert.match(err.hint, /six pairs of hex digits/);
  }
});

Deno.test("isKaosMac is true only for well-formed MACs under the prefix", () => {
  assert.equal(isKaosMac("0a:4b:53:00:00:01"), true);
  assert.equal(isKaosMac("0A:4b:53:FF:00:01"), true);
  assert.equal(isKaosMac("0a:4b:54:00:00:01"), false);
  assert.equal(isKaosMac("0a:4b:53:00:00"), false);
  assert.equal(isKaosMac(""), false);
});

Deno.test("allocateMac takes the lowest unused index, ignoring foreign MACs", () => {
  assert.equal(allocateMac([]), "0a:4b:53:00:00:00");
  assert.equal(
    allocateMac([
      "0a:4b:53:00:00:00",
      "0A:4B:53:00:00:01",
      "52:54:00:00:00:02",
      "0a:4b:53:00:00:03",
    ]),
    "0a:4b:53:00:00:02",
  );
  assert.equal(allocateMac(new Set(["0a:4b:53:00:00:00"])), "0a:4b:53:00:00:01");
  assert.equal(allocateMac(new Set([0, 1, 2])), "0a:4b:53:00:00:03");
  assert.match(userError(() => allocateMac(["0a:4b:53:00:00:0x"])).message, /Invalid MAC/);
});

Deno.test("allocateMac reaches the last index and then reports exhaustion", () => {
  // A set that holds every index (but the last): avoids building 16M entries.
  class AllBut extends Set<number> {
    constructor(readonly missing: number) {
      super();
    }
    override has(n: number): boolean {
      return n !== this.missing;
    }
  }
  assert.equal(allocateMac(new AllBut(KAOS_MAC_COUNT - 1)), "0a:4b:53:ff:ff:ff");
  const err = userError(() => allocateMac(new AllBut(-1)));
  assert.equal(
    err.message,
    "Cannot allocate a MAC address: all 16777216 addresses under 0a:4b:53 are in use",
  );
  assert.equal(err.hint, "delete unused instances or NICs");
  assert.equal(err.code, "exhausted");
});

Deno.test("MacAddress validates inside other schemas and normalises to lower case", () => {
  const Nic = z.strictObject({ mac: MacAddress });
  assert.deepEqual(Nic.parse({ mac: "0A:4B:53:00:00:0A" }), { mac: "0a:4b:53:00:00:0a" });
  const bad = Nic.safeParse({ mac: "03:00:00:00:00:00" });
  assert.deepEqual(bad.error?.issues.map((i) => [i.path, i.message]), [
    [["mac"], "not a MAC address: the first octet has the multicast bit set"],
  ]);
});

Deno.test("property: macIndex inverts macFromIndex", () => {
  fc.assert(fc.property(
    fc.nat({ max: KAOS_MAC_COUNT - 1 }),
    (n) => macIndex(macFromIndex(n)) === n && isKaosMac(macFromIndex(n)),
  ));
});

const foreignMac = fc.tuple(
  fc.nat({ max: 255 }),
  fc.array(fc.nat({ max: 255 }), {
    minLength: 5,
    maxLength: 5,
  }),
).map(([first, rest]) =>
  [first & 0xfe, ...rest].map((b) => b.toString(16).padStart(2, "0")).join(":")
).filter((mac) => !isKaosMac(mac));

const macOp = fc.oneof(
  { weight: 4, arbitrary: fc.constant({ kind: "allocate" as const }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant("release" as const), n: fc.nat() }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant("foreign" as const), mac: foreignMac }) },
);

Deno.test("property: allocate/release sequences keep MACs unique, unicast, local, prefixed", () => {
  fc.assert(
    fc.property(fc.array(macOp, { maxLength: 150 }), fc.boolean(), (ops, upper) => {
      const used: string[] = [];
      for (const op of ops) {
        if (op.kind === "release") {
          if (used.length > 0) used.splice(op.n % used.length, 1);
        } else if (op.kind === "foreign") {
          used.push(op.mac);
        } else {
          const view = upper ? used.map((m) => m.toUpperCase()) : used;
          const mac = allocateMac(view);
          let lowest = 0;
          while (used.includes(macFromIndex(lowest))) lowest++;
          assert.equal(mac, macFromIndex(lowest));
          assert.ok(!used.includes(mac));
          assert.ok(mac.startsWith(KAOS_MAC_PREFIX + ":") && isKaosMac(mac));
          assert.equal(firstOctet(mac) & 0x03, 0x02); // locally administered, unicast
          used.push(mac);
        }
        assert.equal(new Set(used).size, used.length);
      }
    }),
    { numRuns: 300 },
  );
});
