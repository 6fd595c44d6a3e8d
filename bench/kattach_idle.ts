/**
 * Idle RSS of kattach as the appliance runs it (issue 13: memory): a `deno bundle` of main.ts
 * (as buildroot/appliance/build makes /kaos/kaos.js, run with --no-config --cached-only) next to
 * the same kattach run from main.ts with its npm: imports, which is what bench/memory.ts and the
 * hosted mode measure; and a bare Deno (the floor). Rounds alternate; each kattach is hosted, on
 * an empty state directory, without sshd, measured 4 s after it logs "kattach: ready".
 * Prints figures only.
 *
 *   scripts/deno run -A bench/kattach_idle.ts [--rounds R]
 */
import { parseCliOrExit } from "../lib/cli_args.ts";
import { V8_FLAGS_OPTION } from "../lib/v8_flags.ts";

const ROOT = new URL("..", import.meta.url).pathname.replace(/\/$/, "");
const USAGE = "usage: bench/kattach_idle.ts [--rounds R (default 3)]";
const cli = parseCliOrExit(Deno.args, { usage: USAGE, options: { rounds: { type: "string" } } });
const ROUNDS = Number(cli.values.rounds ?? 3);
if (!(Number.isInteger(ROUNDS) && ROUNDS >= 1 && ROUNDS <= 20)) {
  console.error(`Error: bad --rounds\n${USAGE}`);
  Deno.exit(2);
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
}

function rssMiB(pid: number): number {
  const s = Deno.readTextFileSync(`/proc/${pid}/status`);
  return Number(s.match(/^VmRSS:\s+(\d+)/m)?.[1] ?? 0) / 1024;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Starts `deno run … <args> kattach --hosted`, waits until ready + 4 s, returns its RSS. */
async function idleKattach(runArgs: string[], dir: string): Promise<number> {
  const state = await Deno.makeTempDir({ dir, prefix: "state-" });
  const proc = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", V8_FLAGS_OPTION, ...runArgs, "kattach", "--hosted", "--state", state],
    env: { KAOS_SSH_PORT: "0" },
    stdin: "null",
    stdout: "null",
    stderr: "piped",
  }).spawn();
  let log = "";
  const reading = (async () => {
    for await (const chunk of proc.stderr.pipeThrough(new TextDecoderStream())) log += chunk;
  })();
  try {
    const deadline = Date.now() + 120_000;
    while (!log.includes("kattach: ready")) {
      if (Date.now() > deadline) throw new Error(`kattach did not log "ready" in 120 s:\n${log}`);
      await sleep(50);
    }
    await sleep(4000);
    return rssMiB(proc.pid);
  } finally {
    proc.kill("SIGTERM");
    await proc.status;
    await reading;
  }
}

const dir = await Deno.makeTempDir({ prefix: "kaos-bench-idle-" });
try {
  const bundle = `${dir}/kaos.js`;
  const built = await new Deno.Command(Deno.execPath(), {
    args: ["bundle", "-q", "--external", "*.node", "-o", bundle, `${ROOT}/main.ts`],
    cwd: ROOT,
  }).output();
  if (!built.success) {
    throw new Error(`deno bundle main.ts failed: ${new TextDecoder().decode(built.stderr)}`);
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
  await idleKattach(["--no-config", "--cached-only", bundle], dir); // warms the bundle's caches
  const fromMain: number[] = [];
  const fromBundle: number[] = [];
  for (let i = 0; i < ROUNDS; i++) {
    fromMain.push(await idleKattach([`${ROOT}/main.ts`], dir));
    fromBundle.push(await idleKattach(["--no-config", "--cached-only", bundle], dir));
  }
  const load = (await Deno.readTextFile("/proc/loadavg")).split(" ").slice(0, 3).join(" ");
  const f = (xs: number[]) => `${median(xs).toFixed(1)} MiB [${xs.map((x) => x.toFixed(1))}]`;
  console.log(`bench/kattach_idle: ${ROUNDS} rounds, load ${load}`);
  console.log(`kattach idle, bundled (as on the appliance)  ${f(fromBundle)}   goal ≤ 64 MiB`);
  console.log(`kattach idle, from main.ts (npm: imports)    ${f(fromMain)}`);
  console.log(`a bare Deno (no imports)                     ${bareRss.toFixed(1)} MiB`);
} finally {
  await Deno.remove(dir, { recursive: true }).catch(() => {});
}
