/**
 * The compiled result check against zod itself: whatever it accepts, zod accepts and returns
 * equal; what zod refuses, it refuses; schemas with parts it does not know compile to null. Pure
 * logic, so plain values; the client's use of it over a real socket is in client_test.ts.
 */
import assert from "node:assert/strict";
import { z } from "zod";
import { compileCheck } from "./_fast_check.ts";
import { Request } from "./protocol.ts";
import { actions } from "./actions.ts";
import { Instance, VlanInfo } from "./schemas.ts";

const instance = {
  name: "web-1",
  vmimage: "web",
  state: "defined",
  autostart: true,
  restartPolicy: "on-failure",
  nics: [{ index: 0, vlan: 12, mac: "52:54:00:00:00:01", ip: "10.0.12.5" }],
  createdAt: "2026-11-27T12:00:00.000Z",
  pid: null,
  forwards: [{ hostPort: 8080, guestPort: 80, module: "web" }],
  restarts: 0,
  storage: null,
};
const vlan = {
  id: 12,
  name: "v12",
  cidr: "10.0.12.0/24",
  gateway: "10.0.12.1",
  poolStart: "10.0.12.2",
  poolEnd: "10.0.12.254",
  uplink: "none",
  nat: false,
  isolate: true,
  createdAt: "2026-11-27T12:00:00.000Z",
  poolSize: 253,
  used: 1,
  reserved: [{ ip: "10.0.12.9", note: "printer" }],
};

/** Every value reachable from `v` by one change: a field dropped, replaced or added. */
function mutations(v: unknown): unknown[] {
  const odd = [
    undefined,
    null,
    0,
    -1,
    1.5,
    4095,
    NaN,
    Infinity,
    "",
    "Web-1",
    "x".repeat(40),
    true,
    [],
    {},
  ];
  if (Array.isArray(v)) {
    return [
      ...v.flatMap((e, i) => mutations(e).map((m) => v.map((x, j) => (i === j ? m : x)))),
      ...odd.map((o) => [...v, o]),
      "not a list",
    ];
  }
  if (typeof v === "object" && v !== null) {
    const o = v as Record<string, unknown>;
    const out: unknown[] = [{ ...o, extra: 1 }, Object.assign(JSON.parse('{"__proto__":1}'), o)];
    for (const k of Object.keys(o)) {
      const { [k]: _dropped, ...rest } = o;
      out.push(rest);
      for (const m of [...odd, ...mutations(o[k])]) out.push({ ...o, [k]: m });
    }
    return out;
  }
  return odd;
}

function agrees(schema: z.ZodType, values: unknown[]): { accepted: number; refused: number } {
  const check = compileCheck(schema);
  assert.ok(check, "the schema compiles");
  let accepted = 0;
  let refused = 0;
  for (const v of values) {
    const zod = schema.safeParse(v);
    if (check(v)) {
      accepted++;
      assert.ok(zod.success, `zod refuses what the check accepts: ${JSON.stringify(v)}`);
      assert.deepEqual(zod.data, v, "zod returns it unchanged");
    } else {
      refused++;
      // Stricter than zod only where zod would change the value (none of these cases).
      assert.ok(!zod.success, `the check refuses what zod accepts: ${JSON.stringify(v)}`);
    }
  }
  return { accepted, refused };
}

Deno.test("compileCheck: agrees with zod on an instance list and every one-field change of it", () => {
  const list = [instance, { ...instance, name: "web-2", nics: [], state: "running", pid: 77 }];
  const values = [list, ...mutations(list)];
  const { accepted, refused } = agrees(actions["instance.list"].result, values);
  assert.ok(accepted >= 2 && refused > 200, `accepted ${accepted}, refused ${refused}`);
});

Deno.test("compileCheck: agrees with zod on a VLAN list and every one-field change of it", () => {
  const values = [[vlan], [], ...mutations([vlan])];
  const { accepted, refused } = agrees(actions["vlan.list"].result, values);
  assert.ok(accepted >= 2 && refused > 100, `accepted ${accepted}, refused ${refused}`);
});

Deno.test("compileCheck: the refusals that matter, one by one", () => {
  const one = compileCheck(Instance)!;
  const v = compileCheck(VlanInfo)!;
  assert.equal(one(instance), true);
  assert.equal(one({ ...instance, name: "web" }), false, "name pattern");
  assert.equal(one({ ...instance, state: "gone" }), false, "enum");
  assert.equal(one({ ...instance, nics: [{ ...instance.nics[0], vlan: 4095 }] }), false, "range");
  assert.equal(one({ ...instance, restarts: 1.5 }), false, "integer");
  assert.equal(one({ ...instance, pid: undefined }), true, "optional");
  assert.equal(one({ ...instance, autostart: undefined }), false, "required");
  assert.equal(one({ ...instance, secret: "x" }), false, "unknown key of a strict object");
  assert.equal(v({ ...vlan, id: 0 }), false);
  assert.equal(v({ ...vlan, reserved: [{ ip: "1.2.3.4" }] }), false);
});

Deno.test("compileCheck: schemas with parts it does not know compile to null (zod alone)", () => {
  assert.equal(compileCheck(z.string().default("x")), null);
  assert.equal(compileCheck(z.record(z.string(), z.string())), null);
  assert.equal(compileCheck(z.string().transform((s) => s.length)), null);
  assert.equal(compileCheck(z.string().email()), null);
  assert.equal(compileCheck(z.object({ a: z.string() }).passthrough()), null);
  assert.equal(compileCheck(z.strictObject({ a: z.array(z.number().refine((n) => n > 1)) })), null);
  assert.equal(compileCheck(z.string().regex(/a/g)), null, "a stateful pattern");
  // A non-strict object strips unknown keys; first in a union, its output would win.
  assert.equal(compileCheck(z.object({ a: z.string() })), null);
  const union = z.union([
    z.object({ a: z.string() }),
    z.strictObject({ a: z.string(), b: z.number() }),
  ]);
  assert.equal(compileCheck(union), null);
  assert.deepEqual(union.parse({ a: "x", b: 1 }), { a: "x" }, "why: zod strips b here");
});

Deno.test("compileCheck: agrees with zod on request frames and a deploy's parameters (what kattach reads)", () => {
  const request = {
    v: 1,
    id: 7,
    token: "t".repeat(64),
    action: "deploy",
    params: { vmimage: "web", count: 2 },
    origin: { via: "ssh", openedAt: 1795820000000, remote: "10.0.0.2:51234" },
    progress: true,
  };
  const requests = [request, { ...request, params: undefined }, ...mutations(request)];
  const r = agrees(Request, requests);
  assert.ok(r.accepted >= 3 && r.refused > 30, `accepted ${r.accepted}, refused ${r.refused}`);
  const params = { vmimage: "web", count: 2, noStart: true, wait: false };
  const p = agrees(actions["deploy"].params, [
    params,
    { vmimage: "web", count: 1 },
    ...mutations(params),
  ]);
  assert.ok(p.accepted >= 2 && p.refused > 20, `accepted ${p.accepted}, refused ${p.refused}`);
});
