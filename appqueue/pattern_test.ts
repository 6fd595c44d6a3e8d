import assert from "node:assert/strict";
import fc from "fast-check";
import { coerce } from "./config_values.ts";
import { compilePattern, Pattern } from "./pattern.ts";

Deno.test("pattern: whole-value matches like RegExp for the supported language", () => {
  const cases: [string, string, boolean][] = [
    ["[a-z][a-z0-9-]{0,31}", "web-1", true],
    ["[a-z][a-z0-9-]{0,31}", "1web", false],
    ["\\d{1,3}(\\.\\d{1,3}){3}", "10.0.0.1", true],
    ["\\d{1,3}(\\.\\d{1,3}){3}", "10.0.0", false],
    ["^(?:foo|bar)+$", "foobarfoo", true],
    ["colou?r", "color", true],
    ["[^ ]+", "no space", false],
    ["a.c", "a\nc", false],
    ["\\w+@\\w+\\.org", "me@kaos.org", true],
    ["[\\]\\-x]+", "]-x", true],
    ["", "", true],
    ["a|", "", true],
  ];
  for (const [p, v, want] of cases) {
    assert.equal(compilePattern(p).test(v), want, `${p} on ${JSON.stringify(v)}`);
    assert.equal(new RegExp(`^(?:${p})$`).test(v), want, `RegExp agrees on ${p}`);
  }
});

Deno.test("pattern: agrees with RegExp on random patterns and values", () => {
  const atom = fc.constantFrom("a", "b", ".", "[ab]", "[^a]", "\\d", "\\w");
  const pattern: fc.Arbitrary<string> = fc.letrec<{ p: string }>((tie) => ({
    p: fc.oneof(
      { depthSize: "small", withCrossShrink: true },
      atom,
      fc.tuple(tie("p"), tie("p")).map(([x, y]) => x + y),
      fc.tuple(tie("p"), tie("p")).map(([x, y]) => `(?:${x}|${y})`),
      fc.tuple(tie("p"), fc.constantFrom("*", "+", "?", "{2}", "{1,3}", "{0,}", "*?"))
        .map(([x, q]) => `(${x})${q}`),
    ),
  })).p;
  fc.assert(
    fc.property(
      pattern,
      fc.string({ unit: fc.constantFrom("a", "b", "1", "_"), maxLength: 8 }),
      (p, v) => compilePattern(p).test(v) === new RegExp(`^(?:${p})$`).test(v),
    ),
    { numRuns: 500 },
  );
});

Deno.test("pattern: what the language leaves out is refused, naming it", () => {
  const refused: [string, RegExp][] = [
    ["(a*)\\1", /the escape \\1 is not supported/],
    ["(?=a)a", /lookaround and named groups/],
    ["(?<n>a)", /lookaround and named groups/],
    ["\\bword", /the escape \\b is not supported/],
    ["a{300}", /quantifier bounds run up to 255/],
    ["a**", /a quantifier cannot follow another/],
    ["(a", /missing '\)'/],
    ["[a-", /missing '\]'/],
    ["a{x}", /'\{' must start a quantifier/],
    ["a^b", /'\^' is allowed only at the start/],
    ["((((a{255}){255}){255}){255})", /larger than 512 states/],
  ];
  for (const [p, why] of refused) {
    assert.throws(() => Pattern.compile(p), why, p);
    assert.throws(() => Pattern.compile(p), /^PatternError: Invalid pattern /, p);
  }
});

Deno.test("pattern: catastrophic patterns with hostile values return an answer", () => {
  // Each of these takes a backtracking engine (RegExp) exponential time on the value below:
  // ~2^4096 steps. The linear-time matcher walks the value once.
  const hostile = "a".repeat(4096) + "!";
  for (const p of ["(a+)+b", "(a|a)*b", "(a*)*b", "(a|aa)+b", "(.*a){20}b", "(\\w+\\s?)*b"]) {
    assert.equal(compilePattern(p).test(hostile), false, p);
  }
  assert.equal(compilePattern("(a+)+").test("a".repeat(4096)), true);
  // Through the config value check, as `config-group add` runs it.
  const field = {
    name: "title",
    type: "string" as const,
    help: "",
    maxLength: 4096,
    pattern: "(a+)+b",
  };
  assert.throws(() => coerce(field, "a".repeat(4095) + "!"), /must match \(a\+\)\+b/);
  assert.equal(coerce(field, "a".repeat(4095) + "b"), "a".repeat(4095) + "b");
});
