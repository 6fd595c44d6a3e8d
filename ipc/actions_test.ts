import assert from "node:assert/strict";
import { z } from "zod";
import { actions, isActionName } from "./actions.ts";

/** True while `name`'s schemas are not built yet (its property is still the getter). */
function unbuilt(name: string): boolean {
  return Object.getOwnPropertyDescriptor(actions, name)?.get !== undefined;
}

Deno.test("actions: each action's schemas are built at its first use, once, and listing builds none", () => {
  const names = Object.keys(actions);
  assert.ok(names.length >= 70, `only ${names.length} actions`);
  // This test file imports the registry alone: nothing has read an action before it.
  assert.deepEqual(names.filter((n) => !unbuilt(n)), []);
  assert.ok(isActionName("vlan.add") && isActionName("storage.list"));
  assert.ok(!isActionName("vlan.nope") && !isActionName("toString") && !isActionName("__proto__"));
  assert.ok(names.every(unbuilt), "naming actions built some");

  const first = actions["vlan.add"];
  assert.ok(!unbuilt("vlan.add"));
  assert.equal(actions["vlan.add"], first, "a second read built it again");
  assert.equal(actions["vlan.add"].params, first.params);
  assert.ok(unbuilt("vlan.set"), "reading one action built another");

  // The built schemas validate as before: strict params, defaults applied.
  assert.ok(!first.params.safeParse({ id: 5, name: "v5", cidr: "10.0.5.0/24", x: 1 }).success);
  assert.deepEqual(
    actions["appqueue.add"].params.parse({
      name: "q",
      url: "https://q.example/",
      publicKey: "A".repeat(43) + "=",
    }),
    { name: "q", url: "https://q.example/", publicKey: "A".repeat(43) + "=", subscription: false },
  );
});

Deno.test("actions: every builder makes a params and a result schema", () => {
  for (const name of Object.keys(actions)) {
    const spec = actions[name as keyof typeof actions];
    assert.ok(spec.params instanceof z.ZodType, `${name}: params`);
    assert.ok(spec.result instanceof z.ZodType, `${name}: result`);
    assert.ok(!unbuilt(name));
  }
  // The property stays enumerable once built (Object.keys, the fuzzers' list of names).
  assert.equal(Object.keys(actions).length, Object.values(actions).length);
});
