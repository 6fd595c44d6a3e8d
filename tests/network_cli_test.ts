/**
 * The network commands against a real hosted kattach (user-mode networking, so no host link is
 * touched): VLAN uplink/NAT/isolation flags, routes between VLANs, the uplink and DNS settings;
 * every bad input is refused with a clear message and changes nothing.
 */
import assert from "node:assert/strict";
import type { NetworkSettings, VlanInfo, VlanRoute } from "../ipc/mod.ts";
import { TestKattach } from "./_harness.ts";

Deno.test("network commands: vlan --uplink/--nat/--isolate, vlan route, network set; errors change nothing", async () => {
  const k = await TestKattach.start();
  try {
    const plain = await k.json<VlanInfo>("vlan", "add", "10", "front", "10.0.10.0/24");
    assert.deepEqual([plain.uplink, plain.nat, plain.isolate], ["none", false, false]);
    const tagged = await k.json<VlanInfo>(
      ...["vlan", "add", "20", "back", "10.0.20.0/24", "--uplink", "tagged", "--nat", "yes"],
      ...["--isolate", "yes"],
    );
    assert.deepEqual([tagged.uplink, tagged.nat, tagged.isolate], ["tagged", true, true]);
    const set = await k.json<VlanInfo>("vlan", "set", "front", "--nat", "yes");
    assert.deepEqual([set.uplink, set.nat, set.isolate, set.gateway], [
      "none",
      true,
      false,
      "10.0.10.1",
    ]);
    await k.json("vlan", "add", "30", "mgmt", "10.0.30.0/24");

    const shown = await k.aq("vlan", "show", "20");
    assert.match(shown.stdout, /Uplink:\s+tagged/);
    assert.match(shown.stdout, /Isolated:\s+yes/);
    const listed = await k.aq("vlan", "list");
    assert.match(listed.stdout, /^20\s+back\s+.*tagged\s+yes\s+yes\s*$/m);

    assert.deepEqual(await k.json<VlanRoute[]>("vlan", "route", "add", "back", "10"), [
      { a: 10, b: 20 },
    ]);
    assert.deepEqual(await k.json<VlanRoute[]>("vlan", "route", "add", "30", "20"), [
      { a: 10, b: 20 },
      { a: 20, b: 30 },
    ]);
    assert.match((await k.aq("vlan", "route", "list")).stdout, /^20\s+30\s*$/m);

    const settings = await k.json<NetworkSettings>(
      ...["network", "set", "--uplink", "enp1s0", "--dns", "192.0.2.53,198.51.100.53"],
    );
    // User-mode networking: the uplink is not used, so its absence is no warning here (bridged:
    // tests/network_test.ts).
    assert.deepEqual(settings, {
      uplink: "enp1s0",
      dns: ["192.0.2.53", "198.51.100.53"],
      warnings: [],
    });

    const bad: [string[], number, RegExp][] = [
      [["vlan", "add", "40", "x", "10.0.40.0/24", "--uplink", "trunk"], 2, /tagged or none/],
      [["vlan", "add", "41", "x", "10.0.41.0/24", "--nat", "maybe"], 2, /--nat takes yes or no/],
      [["vlan", "set", "10", "--isolate", "1"], 2, /--isolate takes yes or no/],
      [["vlan", "set", "10"], 2, /nothing to change/],
      [["vlan", "route", "add", "10", "10"], 1, /to itself/],
      [["vlan", "route", "add", "20", "10"], 1, /routed already/],
      [["vlan", "route", "add", "10", "99"], 1, /VLAN 99 does not exist/],
      [["vlan", "route", "del", "10", "30"], 1, /not routed/],
      [["vlan", "route", "add", "10"], 2, /VLAN2 is missing/],
      [["network", "set"], 2, /nothing to change/],
      [
        ["network", "set", "--uplink", "eth0/x"],
        1,
        /^Error: "eth0\/x" is not a valid .*\(--uplink\): interface names/,
      ],
      [
        ["network", "set", "--uplink", "a b"],
        1,
        /"a b" is not a valid .*\(--uplink\): interface names/,
      ],
      [["network", "set", "--uplink", "abcdefghijklmnop"], 1, /"abcdefghijklmnop" .*\(--uplink\)/],
      [["network", "set", "--uplink", ".."], 1, /"\.\." .*\(--uplink\): '\.' and '\.\.' are not/],
      [["network", "set", "--uplink", ""], 1, /\(--uplink\)/],
      [["network", "set", "--uplink", "kbr10"], 1, /a link KaOS makes/],
      [["network", "set", "--dns", "10.0.0.300"], 1, /Invalid IPv4 address "10\.0\.0\.300"/],
      [["network", "set", "--dns", "1.1.1.1,1.1.1.1"], 1, /given twice/],
      [["network", "set", "--dns", "1.1.1.1,2.2.2.2,3.3.3.3,4.4.4.4"], 2, /at most 3/],
      [["network", "set", "--uplink", "eth1", "--dns", "bogus"], 1, /Invalid IPv4/],
    ];
    for (const [args, code, message] of bad) {
      const r = await k.aq(...args);
      assert.equal(r.code, code, `aq ${args.join(" ")}: ${r.stderr}`);
      assert.match(r.stderr, message, `aq ${args.join(" ")}`);
      assert.equal(r.stdout, "");
    }
    // Nothing changed: the settings (no eth1 from the last, half-bad line), the routes, VLAN 10.
    assert.deepEqual(await k.json<NetworkSettings>("network", "set", "--dns", "none"), {
      uplink: "enp1s0",
      dns: [],
      warnings: [],
    });
    assert.deepEqual(await k.json<VlanRoute[]>("vlan", "route", "list"), [
      { a: 10, b: 20 },
      { a: 20, b: 30 },
    ]);
    const ten = await k.json<VlanInfo>("vlan", "show", "10");
    assert.deepEqual([ten.uplink, ten.nat, ten.isolate], ["none", true, false]);

    // Deleting a VLAN deletes its routes.
    await k.json("vlan", "del", "30");
    assert.deepEqual(await k.json<VlanRoute[]>("vlan", "route", "del", "10", "20"), []);
  } finally {
    await k.dispose();
  }
});
