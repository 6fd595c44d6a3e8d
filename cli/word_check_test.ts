/**
 * The menus' answer-by-answer check (pure: the registry's builds and the actions' schemas): an
 * answer is blamed only for what it adds, never for the words not asked yet.
 */
import assert from "node:assert/strict";
import { type Command, intArg, type Parsed, UsageError } from "./command.ts";
import { commands } from "./commands.ts";
import { answerProblem } from "./word_check.ts";

const find = (path: string) => commands.find((c) => c.path.join(" ") === path)!;
const parsed = (args: Record<string, string>, flags: Parsed["flags"] = {}): Parsed => ({
  args,
  rest: [],
  flags,
});

Deno.test("answerProblem: the answer's own problems, in the one-line words; not a later word's", () => {
  const add = find("vlan add");
  const id = (v: string) =>
    answerProblem(add, { withIt: parsed({ ID: v }), without: parsed({}), mentions: ["ID", v] });
  assert.equal(id("abc"), 'the VLAN id must be a whole number, not "abc"');
  assert.equal(id("5000"), "the VLAN id runs from 1 to 4094, not 5000");
  assert.equal(id("10"), undefined); // NAME and CIDR, not asked yet, are not its problem
  const name = (v: string) =>
    answerProblem(add, {
      withIt: parsed({ ID: "10", NAME: v }),
      without: parsed({ ID: "10" }),
      mentions: ["NAME", v],
    });
  assert.match(name("Bad_Name")!, /^"Bad_Name" is not a valid VLAN name \(NAME\): names are/);
  assert.equal(name("front"), undefined);
  const pool = answerProblem(add, {
    withIt: parsed({ ID: "10", NAME: "front", CIDR: "10.0.0.0/24" }, { pool: "nonsense" }),
    without: parsed({ ID: "10", NAME: "front", CIDR: "10.0.0.0/24" }),
    mentions: ["--pool", "nonsense"],
  });
  assert.match(pool!, /^--pool takes START-END/);
});

Deno.test("answerProblem: a build that stops at the next word does not blame this one", () => {
  // Reads A, then B: with A given, the build stops at the missing B (a UsageError about B).
  const two: Command = {
    path: ["two"],
    summary: "",
    args: [{ name: "A" }, { name: "B" }],
    flags: [],
    build: (p) => ({
      action: "vlan.route.add",
      params: {
        a: String(intArg(p.args.A, "A")),
        b: p.args.B ?? (() => {
          throw new UsageError("B is missing: give a port from 1 to 256");
        })(),
      },
    }),
    render: () => "",
  };
  const a = (v: string) =>
    answerProblem(two, { withIt: parsed({ A: v }), without: parsed({}), mentions: ["A", v] });
  assert.equal(a("5"), undefined); // B's message holds "256", not the word "5"
  assert.equal(a("x"), 'A must be a whole number, not "x"');
});

Deno.test("addresses are checked by the CLI (lib/ipv4.ts, lib/address_plan.ts): a CIDR, a gateway or a pool outside the subnet", () => {
  const add = find("vlan add");
  const base = { ID: "10", NAME: "front" };
  const cidr = (v: string) =>
    answerProblem(add, {
      withIt: parsed({ ...base, CIDR: v }),
      without: parsed(base),
      mentions: ["CIDR", v],
    });
  assert.equal(
    cidr("10.0.10.0/33"),
    '"10.0.10.0/33" is not a valid CIDR: not a VLAN subnet: the prefix ("33") must be a whole ' +
      "number from 8 to 30; write a network address and a prefix from 8 to 30, e.g. 10.0.10.0/24",
  );
  assert.match(
    cidr("10.0.10.5/24")!,
    /host bits are set after the prefix; did you mean 10\.0\.10\.0\/24/,
  );
  assert.equal(cidr("10.0.10.0/24"), undefined);
  const at = { ...base, CIDR: "10.0.10.0/24" };
  const flag = (name: string, v: string, before: Parsed["flags"] = {}) =>
    answerProblem(add, {
      withIt: parsed(at, { ...before, [name]: v }),
      without: parsed(at, before),
      mentions: [`--${name}`, v],
    });
  assert.equal(
    flag("gateway", "10.0.20.1"),
    '"10.0.20.1" is not a valid IP (--gateway): it must be a host address inside 10.0.10.0/24 ' +
      "(choose an address from 10.0.10.1-10.0.10.254, usually 10.0.10.1)",
  );
  assert.match(
    flag("gateway", "10.0.10.256")!,
    /^"10\.0\.10\.256" is not a valid IP \(--gateway\): not an IPv4 address: octet 4/,
  );
  assert.equal(flag("gateway", "10.0.10.254"), undefined);
  assert.match(
    flag("pool", "10.0.10.100-10.0.11.5")!,
    /^"10\.0\.11\.5" is not a valid pool \(--pool\): it must be a host address inside 10\.0\.10\.0\/24/,
  );
  assert.match(flag("pool", "10.0.10.9-10.0.10.5")!, /the start is after the end/);
  assert.equal(flag("pool", "10.0.10.100-10.0.10.199", { gateway: "10.0.10.1" }), undefined);
});
