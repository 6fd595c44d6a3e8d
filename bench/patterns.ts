/**
 * Validation patterns (appqueue/pattern.ts): time to test a hostile 4097-character value against
 * catastrophic patterns (exponential under a backtracking engine) and against the largest
 * patterns the language admits, beside a baseline (a simple pattern on the same value) measured
 * in the same run. Prints figures only; the goal is under 100 ms per test.
 *
 *   scripts/deno run -A bench/patterns.ts [runs=20]
 */
import { Pattern } from "../appqueue/mod.ts";
import { parseCliOrExit } from "../lib/cli_args.ts";

const usage = "usage: scripts/deno run -A bench/patterns.ts [RUNS]";
const cli = parseCliOrExit(Deno.args, { usage, options: {}, positionals: true });
const runs = Number(cli.positionals[0] ?? "20");
if (!Number.isInteger(runs) || runs < 1 || cli.positionals.length > 1) {
  console.error(`Error: RUNS is a positive whole number\n${usage}`);
  Deno.exit(2);
}
const value = "a".repeat(4096) + "!";
const patterns = [
  "[a-z!]+", // baseline
  "(a+)+b",
  "(a|a)*b",
  "(a|aa)+b",
  "(.*a){20}b",
  "(.*a){100}b",
  "(.*.*.*){85}b", // about the most states the language admits (512)
];
for (const p of patterns) {
  const compiled = Pattern.compile(p);
  const times: number[] = [];
  for (let i = 0; i < runs; i++) {
    const t = performance.now();
    compiled.test(value);
    times.push(performance.now() - t);
  }
  times.sort((a, b) => a - b);
  const median = times[Math.floor(times.length / 2)];
  console.log(`${p.padEnd(18)} median ${median.toFixed(2)} ms  max ${times.at(-1)!.toFixed(2)} ms`);
}
