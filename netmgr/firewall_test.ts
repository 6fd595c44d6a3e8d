import { deepStrictEqual as assertEquals, ok, throws } from "node:assert/strict";
import { fileURLToPath } from "node:url";
import {
  type FirewallInput,
  openMgmtWarning,
  renderFirewall,
  renderMinimalFirewall,
} from "./firewall.ts";
import { syntheticFirewall as scale } from "./firewall_synthetic.ts";

/** Set UPDATE_GOLDEN=1 to rewrite the golden files from the current renderer. */
const UPDATE = Deno.env.get("UPDATE_GOLDEN") === "1";
const CONFIGS = fileURLToPath(new URL("../fixtures/firewall/", import.meta.url));
const GOLDEN = fileURLToPath(new URL("../fixtures/golden/firewall/", import.meta.url));

function loadConfig(name: string): FirewallInput {
  return JSON.parse(Deno.readTextFileSync(`${CONFIGS}${name}.json`));
}

const names = [...Deno.readDirSync(CONFIGS)].map((e) => e.name.replace(/\.json$/, "")).sort();

for (const name of names) {
  Deno.test(`renderFirewall matches golden ${name}`, async () => {
    const text = renderFirewall(loadConfig(name)).text;
    const path = `${GOLDEN}${name}.nft`;
    if (UPDATE) await Deno.writeTextFile(path, text);
    assertEquals(text, await Deno.readTextFile(path));
  });
}

Deno.test("the minimal ruleset matches its golden file", async () => {
  const text = renderMinimalFirewall(1289);
  const path = `${GOLDEN}minimal.nft`;
  if (UPDATE) await Deno.writeTextFile(path, text);
  assertEquals(text, await Deno.readTextFile(path));
});

Deno.test("renderFirewall touches only KaOS' tables and never flushes", () => {
  for (const name of names) {
    const text = renderFirewall(loadConfig(name)).text;
    ok(!/flush/.test(text), name);
    const tables = [...text.matchAll(/^(?:delete )?table (\S+ \S+)/gm)].map((m) => m[1]);
    assertEquals([...new Set(tables)].sort(), ["bridge kaos", "inet kaos"], name);
  }
});

Deno.test("the rule count does not grow with VLANs and guests", () => {
  const rules = (text: string) =>
    text.split("\n").filter((l) =>
      /^\t\t[a-z]/.test(l) &&
      !/^\t\t(type|flags|auto-merge|elements|policy)/.test(l)
    ).length;
  const small = renderFirewall(scale(2, 3)).text;
  const big = renderFirewall(scale(300, 900)).text;
  assertEquals(rules(big), rules(small));
  ok(big.length > small.length * 10);
});

Deno.test("renderFirewall warns when management is open to any source", () => {
  const open = renderFirewall(loadConfig("empty"));
  assertEquals(open.warnings, [openMgmtWarning(1289)]);
  assertEquals(open.forwarding, false);
  const office = renderFirewall(loadConfig("office"));
  assertEquals(office.warnings, []);
  assertEquals(office.forwarding, true);
  const internal = renderFirewall(loadConfig("internal"));
  ok(internal.warnings[0].includes("no uplink"), internal.warnings.join());
});

Deno.test("renderFirewall refuses inconsistent input", () => {
  const base = loadConfig("office");
  throws(
    () => renderFirewall({ ...base, ports: [{ ...base.ports[0], vlan: 99 }] }),
    /VLAN 99, which is not in the input/,
  );
  throws(
    () => renderFirewall({ ...base, ports: [{ ...base.ports[0], ip: "10.0.20.9" }] }),
    /outside VLAN 10/,
  );
  throws(
    () => renderFirewall({ ...base, forwards: [base.forwards[0], base.forwards[0]] }),
    /published twice: tcp 8080/,
  );
  throws(() => renderFirewall({ ...base, uplink: "eth0; flush ruleset" }), /interface name/);
  throws(() => renderFirewall({ ...base, routes: [{ a: 10, b: 77 }] }), /VLAN 77/);
});

Deno.test("a note cannot break out of its comment", () => {
  const text = renderFirewall(loadConfig("office")).text;
  ok(text.includes(`comment "rule 4: say 'no'"`), text);
});
