import assert from "node:assert/strict";
import { checkPlan, defaultPlan, planIssue, planOf } from "./address_plan.ts";

Deno.test("checkPlan: the field at fault, with the sentence, the reason and a hint", () => {
  const plan = defaultPlan("10.0.10.0/24");
  assert.ok(checkPlan(plan).ok);
  const problem = (p: Partial<typeof plan>) => {
    const r = checkPlan({ ...plan, ...p });
    assert.ok(!r.ok);
    return r.problem;
  };
  assert.deepEqual(problem({ gateway: "10.0.11.1" }), {
    field: "gateway",
    message: "Invalid gateway 10.0.11.1: it must be a host address inside 10.0.10.0/24",
    reason: "it must be a host address inside 10.0.10.0/24",
    hint: "choose an address from 10.0.10.1-10.0.10.254, usually 10.0.10.1",
  });
  assert.equal(problem({ gateway: "10.0.10.0" }).field, "gateway"); // the network address
  assert.equal(problem({ poolStart: "10.0.9.9" }).field, "poolStart");
  assert.equal(problem({ poolEnd: "10.0.10.255" }).field, "poolEnd"); // the broadcast address
  assert.equal(
    problem({ poolStart: "10.0.10.9", poolEnd: "10.0.10.5" }).message,
    "Invalid pool 10.0.10.9-10.0.10.5: the start is after the end",
  );
  const spelled = problem({ poolEnd: "10.0.10.x" });
  assert.equal(spelled.field, "poolEnd");
  assert.equal(spelled.spelling, true);
  assert.match(spelled.message, /^Invalid IPv4 address "10\.0\.10\.x"/);
  assert.equal(problem({ cidr: "10.0.10.0/33" }).field, "cidr");
});

Deno.test("planIssue: vlan add's addresses together (defaults for those not given), none for a misspelling", () => {
  assert.equal(planIssue({ cidr: "10.0.10.0/24" }), undefined);
  assert.equal(planIssue({ cidr: "10.0.10.0/24", gateway: "10.0.10.254" }), undefined);
  assert.deepEqual(planIssue({ cidr: "10.0.10.0/24", gateway: "10.0.20.1" }), {
    path: ["gateway"],
    message: "it must be a host address inside 10.0.10.0/24 " +
      "(choose an address from 10.0.10.1-10.0.10.254, usually 10.0.10.1)",
  });
  assert.deepEqual(
    planIssue({ cidr: "10.0.10.0/30", poolStart: "10.0.10.2", poolEnd: "10.0.10.3" })?.path,
    ["poolEnd"],
  );
  // Told by the field's own schema, or not given yet: nothing here.
  assert.equal(planIssue({ cidr: "10.0.10.0/33", gateway: "10.0.20.1" }), undefined);
  assert.equal(planIssue({ cidr: "10.0.10.0/24", gateway: "10.0.10" }), undefined);
  assert.equal(planIssue({ gateway: "10.0.20.1" }), undefined);
  assert.equal(planIssue({ cidr: 5 }), undefined);
  assert.equal(planOf("nonsense", {}), undefined);
});
