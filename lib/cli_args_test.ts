import assert from "node:assert/strict";
import { parseArgs } from "node:util";
import fc from "fast-check";
import { firstWordIndex, type OptionSpec, parseCli, parseStrict } from "./cli_args.ts";

const WORDS = [
  ...["--state", "--state=x", "--state=", "--state=-y", "-s", "-sdir", "-s=v", "-hs", "-sh"],
  ...["--hosted", "--hosted=1", "--hosted=", "-h", "-hh", "-hx", "-xh", "-x", "-"],
  ...["--ssh-port", "--ssh-port=22", "22", "-1", "--bogus", "--bogus=1", "--help", "--"],
  ...["word", "other", "--=x", "---", "-=", "--h", "--s"],
];
const OPTIONS: Record<string, OptionSpec> = {
  state: { type: "string", short: "s" },
  hosted: { type: "boolean" },
  "ssh-port": { type: "string" },
  help: { type: "boolean", short: "h" },
};

/** node:util's parseArgs in strict mode, as cli_args.ts used it: the result or the message. */
function node(args: string[], positionals: boolean) {
  try {
    const r = parseArgs({ args, options: OPTIONS, allowPositionals: positionals, strict: true });
    return { values: { ...r.values }, positionals: r.positionals };
  } catch (err) {
    return (err as Error).message.split("\n")[0].replace(/\. To specify .*$/, "");
  }
}

Deno.test("parseStrict: parses and refuses what node:util parseArgs (strict) does, with its messages", () => {
  fc.assert(
    fc.property(
      fc.array(fc.constantFrom(...WORDS), { maxLength: 6 }),
      fc.boolean(),
      (args, positionals) => {
        const ours = parseStrict(args, { options: OPTIONS, positionals });
        const want = node(args, positionals);
        assert.deepEqual(
          typeof ours === "string" ? ours : { ...ours, values: { ...ours.values } },
          want,
          JSON.stringify(args),
        );
      },
    ),
    { numRuns: 3000 },
  );
  // A few by name, so a change of both sides shows too.
  assert.deepEqual(
    parseStrict(["--state", "d", "--hosted"], { options: OPTIONS, positionals: false }),
    {
      values: Object.assign(Object.create(null), { state: "d", hosted: true }),
      positionals: [],
    },
  );
  assert.equal(
    parseStrict(["--bogus"], { options: OPTIONS, positionals: true }),
    "Unknown option '--bogus'",
  );
  assert.equal(
    parseStrict(["--state"], { options: OPTIONS, positionals: false }),
    "Option '-s, --state <value>' argument missing",
  );
});

Deno.test("firstWordIndex: where node:util parseArgs' tokens (not strict) see the first word or --", () => {
  fc.assert(
    fc.property(fc.array(fc.constantFrom(...WORDS), { maxLength: 6 }), (args) => {
      const { tokens } = parseArgs({
        args,
        options: { state: { type: "string" } },
        strict: false,
        allowPositionals: true,
        tokens: true,
      });
      const first = tokens.find((t) => t.kind === "positional" || t.kind === "option-terminator");
      assert.equal(
        firstWordIndex(args, ["state"]),
        first?.index ?? args.length,
        JSON.stringify(args),
      );
    }),
    { numRuns: 3000 },
  );
});

Deno.test("parseCli: --help prints the usage (exit 0); a refusal prints the reason and the usage (exit 2)", () => {
  const out: string[] = [];
  const err: string[] = [];
  const io = { out: (t: string) => out.push(t), err: (t: string) => err.push(t) };
  const spec = { usage: "usage: x [--state DIR]", options: { state: { type: "string" as const } } };
  assert.deepEqual(parseCli(["--state", "d", "-h"], spec, io), { exit: 0 });
  assert.deepEqual(out, ["usage: x [--state DIR]\n"]);
  assert.deepEqual(parseCli(["--stat", "d"], spec, io), { exit: 2 });
  assert.deepEqual(err, ["Error: Unknown option '--stat'\nusage: x [--state DIR]\n"]);
  const ok = parseCli(["--state=d"], spec, io);
  assert.ok(!("exit" in ok));
  assert.deepEqual({ ...ok.values }, { state: "d" });
});
