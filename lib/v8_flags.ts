/**
 * The V8 flags KaOS' own processes run with (issue 13: memory), in one place: the appliance's
 * launcher (buildroot/appliance/kattach_launcher.c, kept equal by its test), the services
 * kattach starts (sshd, console), `deno task kaos`, the test harness and the benchmarks.
 *
 * - `--max-semi-space-size=1`: a 1 MiB young generation instead of up to 16 MiB per semi-space;
 *   kattach and the front-ends allocate little at a time.
 * - `--max-old-space-size=512`: V8 scales how far the heap may grow past what is live by this
 *   limit (under 2× at 512 MiB, 4× from a limit of 1-2 GiB, the default on a machine with
 *   gigabytes); with it kattach's RSS after `instance list` of 10,000 records stayed about 50 MiB
 *   lower (130-146 against 190-197 MiB, side by side). Its live heap is 15-40 MiB: the limit
 *   leaves ten times that.
 * - `--expose-gc`: the global `gc()` that lib/idle_memory.ts' idle-time reducer calls once a
 *   process is quiet after work (V8 itself collects the old generation only as it grows).
 */
export const V8_FLAGS = [
  "--max-semi-space-size=1",
  "--max-old-space-size=512",
  "--expose-gc",
] as const;

/** The `deno run` option that applies {@linkcode V8_FLAGS}. */
export const V8_FLAGS_OPTION = `--v8-flags=${V8_FLAGS.join(",")}`;

/**
 * The V8 flags of kaos.js, the program kattach runs from (the launcher, the image build's code
 * cache of kaos.js and kaos.d/, its tests and benchmarks): {@linkcode V8_FLAGS} and
 * `--max-opt=2`, V8's tiers up to Maglev without TurboFan. kattach's hot code is short (the lists
 * are SQLite's JSON text, passed on) and TurboFan's compiles cost RSS: after `instance list` of
 * 10,000 it held 4-15 MiB less, the lists as fast; idle the same (bench/scale.ts
 * --compare-v8-flags, README). The sshd and the console run with {@linkcode FRONT_END_V8_FLAGS}
 * (the same flags today, for reasons of their own); V8 refuses a code cache made under other
 * flags, so the image build warms each bundle under the flags it runs with.
 */
export const KATTACH_V8_FLAGS = [...V8_FLAGS, "--max-opt=2"] as const;

/** The `deno run` option that applies {@linkcode KATTACH_V8_FLAGS}. */
export const KATTACH_V8_FLAGS_OPTION = `--v8-flags=${KATTACH_V8_FLAGS.join(",")}`;

/**
 * The V8 flags of the front-ends, the sshd and the console (the appliance's /kaos/sshd.js and
 * /kaos/console.js, their chunks' code cache warmed under them; hosted, `main.ts sshd|console`
 * as kattach starts them): {@linkcode V8_FLAGS} and `--max-opt=2`, Maglev as the top tier and
 * no TurboFan. TurboFan's code in the deno binary is touched the first time it optimizes
 * something: about 4.4 MiB of the sshd's RSS after its first few hundred one-line commands,
 * which its growth goal counted; the front-ends wait on the network and the terminal, not on
 * their JavaScript.
 */
export const FRONT_END_V8_FLAGS = [...V8_FLAGS, "--max-opt=2"] as const;

/** The `deno run` option that applies {@linkcode FRONT_END_V8_FLAGS}. */
export const FRONT_END_V8_FLAGS_OPTION = `--v8-flags=${FRONT_END_V8_FLAGS.join(",")}`;

/** The `--v8-flags=` options this process was started with (from /proc/self/cmdline). */
export function v8FlagsInUse(): string[] {
  try {
    return Deno.readTextFileSync("/proc/self/cmdline").split("\0")
      .filter((a) => a.startsWith("--v8-flags="));
  } catch {
    return [];
  }
}
