import assert from "node:assert/strict";
import {
  bridgeName,
  IFNAME_MAX,
  isKaosLink,
  kaosAlias,
  macFromIndex,
  tapName,
  vlanLinkName,
} from "./mod.ts";

Deno.test("names: bridge, VLAN link and tap names fit IFNAMSIZ", () => {
  assert.equal(bridgeName(10), "kbr10");
  assert.equal(vlanLinkName(4094), "kvl4094");
  assert.equal(tapName("0a:4b:53:00:00:01"), "kt0a4b53000001");
  for (const name of [bridgeName(4094), vlanLinkName(4094), tapName(macFromIndex(0xffffff))]) {
    assert.ok(name.length <= IFNAME_MAX, name);
  }
});

Deno.test("names: out-of-range VLAN ids and malformed MACs are refused", () => {
  for (const id of [0, 4095, 1.5, -1]) {
    assert.throws(() => bridgeName(id), RangeError);
    assert.throws(() => vlanLinkName(id), RangeError);
  }
  assert.throws(() => tapName("0A:4B:53:00:00:01"), TypeError);
  assert.throws(() => tapName("0a:4b:53:00:00"), TypeError);
});

Deno.test("names: ownership needs both the name prefix and the alias", () => {
  assert.ok(isKaosLink("kbr10", kaosAlias("bridge", 10)));
  assert.ok(isKaosLink("kt0a4b53000001", kaosAlias("tap", "web-1", 0)));
  assert.equal(kaosAlias("tap", "web-1", 0), "kaos:tap:web-1:0");
  assert.ok(!isKaosLink("kbr10", undefined));
  assert.ok(!isKaosLink("eth0", "kaos:bridge:1"));
  assert.ok(!isKaosLink("br0", "kaos:bridge:1"));
});
