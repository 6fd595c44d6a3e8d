/**
 * Benchmark of guest storage on loop devices (hosted kattach with --storage-disks): how long
 * `storage init` takes through `aq` next to its parts measured in the same run (a bare
 * `mke2fs -t ext4` of the same disk, and an `aq storage list` round trip), and how long
 * `system log --lines N` takes for a full log. Prints figures only (no assertions on time).
 *
 *   scripts/deno run -A bench/storage.ts [--runs N] [--size-mib N]
 */
import { parseCliOrExit } from "../lib/cli_args.ts";
import { kattachArgv } from "../lib/hosted_kattach.ts";

const ROOT = new URL("..", import.meta.url).pathname.replace(/\/$/, "");

const { values } = parseCliOrExit(Deno.args, {
  usage: "usage: bench/storage.ts [--runs N] [--size-mib N]   (needs root: loop devices)",
  options: { runs: { type: "string" }, "size-mib": { type: "string" } },
});
const RUNS = Number(values.runs ?? 3);
const SIZE_MIB = Number(values["size-mib"] ?? 1024);

async function sh(argv: string[]): Promise<string> {
  const out = await new Deno.Command(argv[0], { args: argv.slice(1), stdin: "null" }).output();
  const text = new TextDecoder().decode(out.stdout) + new TextDecoder().decode(out.stderr);
  if (!out.success) throw new Error(`${argv.join(" ")} failed: ${text}`);
  return text;
}

async function timed(fn: () => Promise<unknown>): Promise<number> {
  const t = performance.now();
  await fn();
  return performance.now() - t;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

const ms = (x: number) => `${x.toFixed(0)} ms`;

const tmp = await Deno.makeTempDir({ prefix: "kaos-bench-st-" });
const state = `${tmp}/s`;
const file = `${tmp}/disk.img`;
const f = await Deno.open(file, { write: true, create: true });
await f.truncate(SIZE_MIB * 1024 * 1024);
f.close();
const loop = (await sh(["losetup", "--find", "--show", file])).trim();
const deno = Deno.execPath();
const aq = (...args: string[]) =>
  sh([deno, "run", "-A", `${ROOT}/main.ts`, "aq", "--state", state, ...args]);
let kattach: Deno.ChildProcess | undefined;
try {
  kattach = new Deno.Command(deno, {
    args: kattachArgv({ state, sshPort: 0, args: ["--storage-disks", loop], denoOptions: [] })
      .slice(1),
    stdin: "null",
    stdout: "null",
    stderr: "null",
  }).spawn();
  for (let i = 0; i < 300; i++) {
    if (await aq("system", "status").then(() => true, () => false)) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  const bare: number[] = [];
  const init: number[] = [];
  const list: number[] = [];
  for (let run = 0; run < RUNS; run++) {
    bare.push(await timed(() => sh(["mke2fs", "-t", "ext4", "-F", "-q", "-m", "0", loop])));
    list.push(await timed(() => aq("storage", "list")));
    init.push(await timed(() => aq("storage", "init", loop, "--name", "bench", "--yes")));
    await aq("storage", "del", "bench");
  }
  // Some log lines, then read the whole log back.
  for (let i = 0; i < 20; i++) await aq("vlan", "add", String(100 + i), `b${i}`, `10.77.${i}.0/24`);
  const tail = await timed(() => aq("system", "log", "--lines", "10000"));
  const status = await timed(() => aq("system", "status"));
  console.log(`storage init on a ${SIZE_MIB} MiB loop device, ${RUNS} runs (medians):`);
  console.log(`  aq storage init DISK --yes      ${ms(median(init))}`);
  console.log(`  baseline: bare mke2fs -t ext4   ${ms(median(bare))}`);
  console.log(`  baseline: aq storage list       ${ms(median(list))} (aq process + IPC)`);
  console.log(
    `  init overhead over mke2fs + aq   ${ms(median(init) - median(bare) - median(list))}`,
  );
  console.log(`system log --lines 10000          ${ms(tail)} (aq system status: ${ms(status)})`);
} finally {
  try {
    kattach?.kill("SIGTERM");
    await kattach?.status;
  } catch { /* gone */ }
  await new Deno.Command("umount", { args: ["-l", `${state}/storage/bench`] }).output();
  await new Deno.Command("losetup", { args: ["-d", loop] }).output();
  await Deno.remove(tmp, { recursive: true });
}
