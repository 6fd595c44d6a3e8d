/**
 * Idle RSS of kattach, the sshd and the console as the appliance runs them (issue 13: memory): bundles made
 * as buildroot/appliance/build makes /kaos/kaos.js + /kaos/kaos.d/ (of main.ts, by
 * buildroot/appliance/bundle_kaos: split at its dynamic imports, minified) and /kaos/sshd.js,
 * /kaos/console.js + /kaos/fe.d/ (buildroot/appliance/bundle-front-ends), ASCII only, run with --no-config --cached-only and lib/v8_flags.ts' flags (the front-ends theirs).
 * Beside them, in the same rounds: kattach from main.ts with its npm: imports (what the hosted
 * mode and bench/memory.ts run), kattach from one ASCII bundle of main.ts (as the appliance was
 * built before bundle_kaos), kaos.js split with its dynamic imports of string literals (as
 * bundle_kaos made it before: Deno reads those chunks at the start), kaos.js with TurboFan
 * (lib/v8_flags.ts' V8_FLAGS, kattach's before --max-opt=2) and a bare Deno (the floor). Rounds alternate; each kattach is
 * hosted, on an empty state directory, without sshd, measured 4 s after it logs "kattach: ready";
 * the sshd 4 s after it listens (no kattach behind it: it connects per login); the console (on a
 * pseudo-terminal) 4 s after it asks to press Enter (--wait-key, as kattach runs it) or for the
 * password. Beside them, as before: the sshd as one bundle, the console of kaos.js. Prints figures
 * and one goal line per goal.
 *
 *   scripts/deno run -A bench/kattach_idle.ts [--rounds R]
 */
import { parseCliOrExit } from "../lib/cli_args.ts";
import {
  FRONT_END_V8_FLAGS_OPTION,
  KATTACH_V8_FLAGS_OPTION,
  V8_FLAGS_OPTION,
} from "../lib/v8_flags.ts";
import { ACTIVATE_PROMPT } from "../cli/console.ts";

const ROOT = new URL("..", import.meta.url).pathname.replace(/\/$/, "");
const USAGE = "usage: bench/kattach_idle.ts [--rounds R (default 3)]";
const cli = parseCliOrExit(Deno.args, { usage: USAGE, options: { rounds: { type: "string" } } });
const ROUNDS = Number(cli.values.rounds ?? 3);
if (!(Number.isInteger(ROUNDS) && ROUNDS >= 1 && ROUNDS <= 20)) {
  console.error(`Error: bad --rounds\n${USAGE}`);
  Deno.exit(2);
}
/** The goal of issue 13 for kattach and the sshd idle, MiB RSS. */
const GOAL_MIB = 64;

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
}

function rssMiB(pid: number): number {
  const s = Deno.readTextFileSync(`/proc/${pid}/status`);
  return Number(s.match(/^VmRSS:\s+(\d+)/m)?.[1] ?? 0) / 1024;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** How {@linkcode idleRss} runs a program. */
interface IdleRun {
  /** What it prints on stderr when it is up. */
  ready: string;
  /** `--v8-flags=…`: kattach's or the front-ends' (lib/v8_flags.ts). */
  flags: string;
  /**
   * Deno's cache directory, for a bundle run under other flags than usual: V8 refuses a code
   * cache made under other flags and Deno rewrites it, so runs alternating flags in one cache
   * would each start cold (the appliance's cache matches its flags).
   */
  denoDir?: string;
}

/** Runs `deno run <flags> … <args>` until its stderr shows `ready`, then 4 s more; returns its RSS. */
async function idleRss(args: string[], run: IdleRun): Promise<number> {
  const { ready, flags, denoDir } = run;
  const proc = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", flags, ...args],
    env: { KAOS_SSH_PORT: "0", ...denoDir ? { DENO_DIR: denoDir } : {} },
    stdin: "piped", // the sshd runs until its stdin closes (--supervised)
    stdout: "null",
    stderr: "piped",
  }).spawn();
  const stdin = proc.stdin.getWriter(); // held open: its end would stop the sshd
  let exited = false;
  proc.status.then(() => exited = true);
  let log = "";
  const reading = (async () => {
    for await (const chunk of proc.stderr.pipeThrough(new TextDecoderStream())) log += chunk;
  })();
  try {
    const deadline = Date.now() + 120_000;
    while (!log.includes(ready)) {
      if (Date.now() > deadline) throw new Error(`no "${ready}" in 120 s:\n${log}`);
      if (exited) throw new Error(`${args.join(" ")} ended before "${ready}":\n${log}`);
      await sleep(50);
    }
    await sleep(4000);
    return rssMiB(proc.pid);
  } finally {
    try {
      proc.kill("SIGTERM");
    } catch { /* it ended: the error above says why */ }
    await stdin.close().catch(() => {});
    await proc.status;
    await reading;
  }
}

/**
 * The console from a bundle on a pseudo-terminal (script(1)), as kattach runs it on tty1: its RSS
 * 4 s after it asks for the password (no kattach behind it: it connects once one is typed). Its
 * pid comes from its memory log (lib/memory_log.ts), script(1) standing between.
 */
async function consoleRss(js: string, waitKey: boolean): Promise<number> {
  const state = await Deno.makeTempDir({ dir, prefix: "state-" });
  const mem = await Deno.makeTempDir({ dir, prefix: "mem-" });
  const cmd = [Deno.execPath(), "run", "-A", FRONT_END_V8_FLAGS_OPTION, "--no-config"]
    .concat(["--cached-only"])
    .concat([js, "console", "--state", state, ...(waitKey ? ["--wait-key"] : [])]).join(" ");
  const prompt = waitKey ? ACTIVATE_PROMPT : "Password for";
  const proc = new Deno.Command("script", {
    args: ["-qfc", cmd, "/dev/null"],
    env: { TERM: "xterm", KAOS_MEMORY_LOG: mem },
    stdin: "piped",
    stdout: "piped",
    stderr: "null",
  }).spawn();
  const stdin = proc.stdin.getWriter();
  let screen = "";
  const reading = (async () => {
    for await (const chunk of proc.stdout.pipeThrough(new TextDecoderStream())) screen += chunk;
  })();
  let pid = 0;
  try {
    const deadline = Date.now() + 120_000;
    while (!screen.includes(prompt)) {
      if (Date.now() > deadline) throw new Error(`the console showed no "${prompt}":\n${screen}`);
      await sleep(50);
    }
    for (const e of Deno.readDirSync(mem)) {
      // console-PID.json; its .tmp beside it for a moment (lib/memory_log.ts) names no pid
      const m = e.name.match(/^console-(\d+)\.json$/);
      if (m) pid = Number(m[1]);
    }
    if (!pid) throw new Error("the console wrote no memory log");
    await sleep(4000);
    return rssMiB(pid);
  } finally {
    try {
      if (pid) Deno.kill(pid, "SIGTERM");
      proc.kill("SIGTERM");
    } catch { /* ended */ }
    await stdin.close().catch(() => {});
    await proc.status;
    await reading;
  }
}

/**
 * Bundles `entry` as the appliance build does: the __dirname line (npm:ssh2 reads it) and, with
 * `ascii`, every non-ASCII UTF-16 unit as a \\uXXXX escape (buildroot/appliance/build ascii_js).
 */
async function bundle(entry: string, out: string, ascii: boolean): Promise<void> {
  const built = await new Deno.Command(Deno.execPath(), {
    // The output name ends in .js: deno bundle makes the require() shim of npm:ssh2's CommonJS
    // code only then (with another name the sshd fails with "Dynamic require ... not supported").
    args: ["bundle", "-q", "--external", "*.node", "-o", `${out}.tmp.js`, `${ROOT}/${entry}`],
    cwd: ROOT,
  }).output();
  if (!built.success) {
    throw new Error(`deno bundle ${entry} failed: ${new TextDecoder().decode(built.stderr)}`);
  }
  const js = await Deno.readTextFile(`${out}.tmp.js`);
  await Deno.writeTextFile(
    out,
    "var __dirname = import.meta.dirname, __filename = import.meta.filename;\n" +
      (ascii
        ? js.replace(
          /[\u0080-\uffff]/g,
          (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`,
        )
        : js),
  );
}

const dir = await Deno.makeTempDir({ prefix: "kaos-bench-idle-" });
try {
  const split = await new Deno.Command(`${ROOT}/buildroot/appliance/bundle_kaos`, {
    args: [`${dir}/kaos.js`],
  }).output();
  if (!split.success) {
    throw new Error(`bundle_kaos failed: ${new TextDecoder().decode(split.stderr)}`);
  }
  // kaos.js as bundle_kaos made it before its dynamic imports named their chunks through an
  // expression: each a string literal (`import("./x.js")`), which Deno reads at the start.
  await Deno.mkdir(`${dir}/kaos-lit.d`);
  const literal = (js: string) => js.replace(/\bimport\(\["(\.\/[^"]+)"\]\[0\]\)/g, 'import("$1")');
  for (const e of Deno.readDirSync(`${dir}/kaos.d`)) {
    const js = Deno.readTextFileSync(`${dir}/kaos.d/${e.name}`);
    Deno.writeTextFileSync(`${dir}/kaos-lit.d/${e.name}`, literal(js));
  }
  const kaosJs = Deno.readTextFileSync(`${dir}/kaos.js`);
  Deno.writeTextFileSync(
    `${dir}/kaos-lit.js`,
    literal(kaosJs).replaceAll("./kaos.d/", "./kaos-lit.d/"),
  );
  await bundle("main.ts", `${dir}/kaos-one.js`, true);
  await bundle("sshd_main.ts", `${dir}/sshd-one.js`, true); // the sshd as bundled before
  const fe = await new Deno.Command(`${ROOT}/buildroot/appliance/bundle-front-ends`, {
    args: [dir], // sshd.js, console.js, fe.d/
  }).output();
  if (!fe.success) {
    throw new Error(`bundle-front-ends failed: ${new TextDecoder().decode(fe.stderr)}`);
  }
  const bare = await new Deno.Command(Deno.execPath(), {
    args: [
      ...["run", "-A", "--no-config", V8_FLAGS_OPTION],
      "data:text/javascript,await new Promise((r) => setTimeout(r, 1000)); console.log(Deno.readTextFileSync('/proc/self/status').match(/^VmRSS:\\s+(\\d+)/m)[1])",
    ],
    stdout: "piped",
  }).output();
  const bareRss = Number(new TextDecoder().decode(bare.stdout).trim()) / 1024;
  if (!bare.success || !(bareRss > 0)) throw new Error("the bare Deno did not report its RSS");
  const kattach = async (run: string[], v8 = { flags: KATTACH_V8_FLAGS_OPTION }) => {
    const state = await Deno.makeTempDir({ dir, prefix: "state-" });
    return idleRss([...run, "kattach", "--hosted", "--state", state], {
      ready: "kattach: ready",
      ...v8,
    });
  };
  /** kaos.js with TurboFan (without --max-opt=2), in a Deno cache of its own (IdleRun.denoDir). */
  const withTurbofan = { flags: V8_FLAGS_OPTION, denoDir: `${dir}/deno-turbofan` };
  const sshd = async (js: string) => {
    const state = await Deno.makeTempDir({ dir, prefix: "state-" });
    const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    const port = (l.addr as Deno.NetAddr).port;
    l.close();
    return idleRss(
      [
        ...["--no-config", "--cached-only", `${dir}/${js}`, "--supervised", "--state", state],
        ...["--port", String(port), "--listen", "127.0.0.1"],
      ],
      // the front-ends' flags, as the appliance runs its sshd
      { ready: "listening", flags: FRONT_END_V8_FLAGS_OPTION },
    );
  };
  const bundled = (js: string) => ["--no-config", "--cached-only", `${dir}/${js}`];
  // A first run of each warms Deno's caches (V8 code cache, module analysis), as the image does.
  await kattach(bundled("kaos.js"));
  await kattach(bundled("kaos-one.js"));
  await kattach(bundled("kaos-lit.js"));
  await kattach(bundled("kaos.js"), withTurbofan);
  await sshd("sshd.js");
  await sshd("sshd-one.js");
  await consoleRss(`${dir}/console.js`, true);
  await consoleRss(`${dir}/console.js`, false);
  await consoleRss(`${dir}/kaos.js`, false);
  const fromBundle: number[] = [];
  const consoles: number[] = [];
  const consolesLogin: number[] = [];
  const consolesKaos: number[] = [];
  const fromOne: number[] = [];
  const fromLit: number[] = [];
  const fromMain: number[] = [];
  const fromBundleTurbo: number[] = [];
  const sshds: number[] = [];
  const sshdsOne: number[] = [];
  for (let i = 0; i < ROUNDS; i++) {
    fromBundle.push(await kattach(bundled("kaos.js")));
    fromBundleTurbo.push(await kattach(bundled("kaos.js"), withTurbofan));
    fromMain.push(await kattach([`${ROOT}/main.ts`]));
    fromOne.push(await kattach(bundled("kaos-one.js")));
    fromLit.push(await kattach(bundled("kaos-lit.js")));
    sshds.push(await sshd("sshd.js"));
    sshdsOne.push(await sshd("sshd-one.js"));
    consoles.push(await consoleRss(`${dir}/console.js`, true));
    consolesLogin.push(await consoleRss(`${dir}/console.js`, false));
    consolesKaos.push(await consoleRss(`${dir}/kaos.js`, false));
  }
  const load = (await Deno.readTextFile("/proc/loadavg")).split(" ").slice(0, 3).join(" ");
  const f = (xs: number[]) => `${median(xs).toFixed(1)} MiB [${xs.map((x) => x.toFixed(1))}]`;
  console.log(`bench/kattach_idle: ${ROUNDS} rounds, load ${load}; medians [rounds]`);
  console.log(`kattach idle, bundled as on the appliance      ${f(fromBundle)}`);
  console.log(`kattach idle, bundled, with TurboFan (before)   ${f(fromBundleTurbo)}`);
  console.log(`kattach idle, one bundle (before bundle_kaos)  ${f(fromOne)}`);
  console.log(`kattach idle, split, literal import()s (before) ${f(fromLit)}`);
  console.log(`kattach idle, from main.ts (npm: imports)      ${f(fromMain)}`);
  console.log(`sshd idle, sshd.js as on the appliance         ${f(sshds)}`);
  console.log(`sshd idle, one bundle (before)                 ${f(sshdsOne)}`);
  console.log(`console idle, console.js --wait-key (appliance) ${f(consoles)}`);
  console.log(`console idle, console.js at its password prompt ${f(consolesLogin)}`);
  console.log(`console idle, kaos.js console (before)         ${f(consolesKaos)}`);
  console.log(`a bare Deno (no imports)                       ${bareRss.toFixed(1)} MiB`);
  const goal = (what: string, xs: number[], before = "") =>
    console.log(
      `goal: ${what} ${median(xs).toFixed(1)} MiB (≤ ${GOAL_MIB}): ${
        median(xs) <= GOAL_MIB ? "met" : "not met"
      }; baseline: a bare Deno ${bareRss.toFixed(1)} MiB${before} (same run)`,
    );
  goal(
    "kattach idle, as on the appliance,",
    fromBundle,
    `, without --max-opt=2 (before) ${median(fromBundleTurbo).toFixed(1)} MiB` +
      `, one bundle (before bundle_kaos) ${median(fromOne).toFixed(1)} MiB, split with literal` +
      ` import()s (before) ${median(fromLit).toFixed(1)} MiB`,
  );
  goal("sshd idle, as on the appliance,", sshds, `, one bundle ${median(sshdsOne).toFixed(1)} MiB`);
  goal(
    "console idle, as on the appliance,",
    consoles,
    `, kaos.js' console ${median(consolesKaos).toFixed(1)} MiB`,
  );
} finally {
  await Deno.remove(dir, { recursive: true }).catch(() => {});
}
