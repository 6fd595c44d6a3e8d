/**
 * The sshd's memory as the appliance runs it (issue 13): /kaos/sshd.js and its chunks made by
 * buildroot/appliance/bundle-front-ends, run with --no-config --cached-only and lib/v8_flags.ts'
 * front-end flags (no TurboFan). Idle: its RSS 4 s after it listens (host keys made by a first run, as after the
 * appliance's first boot), in alternating rounds beside the same bundle with all of ssh2's server
 * code (`--full-ssh2`: no stubs for SFTP, poly1305, bcrypt-pbkdf, zlib) and a bare Deno (the
 * floor). Growth: behind a hosted kattach (main.ts, no sshd of its own), one-line commands over
 * one multiplexed OpenSSH connection (4 at a time), as bench/memory.ts sends them: RSS, the JS
 * heap (its memory log) and where RSS sits (smaps: the deno binary's pages, glibc's heap, other
 * anonymous memory) after the first 100 commands, 2 s after N more and 15 s later (settled: the
 * goal's figure). Prints figures and one goal line per goal.
 *
 *   scripts/deno run -A bench/sshd_memory.ts [--rounds R] [--commands N]
 */
import { IpcClient } from "../ipc/mod.ts";
import { parseCliOrExit } from "../lib/cli_args.ts";
import { kattachArgv } from "../lib/hosted_kattach.ts";
import { FRONT_END_V8_FLAGS_OPTION } from "../lib/v8_flags.ts";
import { freePort, sleep, waitUntil } from "./_util.ts";

const ROOT = new URL("..", import.meta.url).pathname.replace(/\/$/, "");
const USAGE = "usage: bench/sshd_memory.ts [--rounds R (default 3)] [--commands N (default 1000)]";
const cli = parseCliOrExit(Deno.args, {
  usage: USAGE,
  options: { rounds: { type: "string" }, commands: { type: "string" } },
});
const ROUNDS = Number(cli.values.rounds ?? 3);
const COMMANDS = Number(cli.values.commands ?? 1000);
if (
  !(Number.isInteger(ROUNDS) && ROUNDS >= 1 && ROUNDS <= 20) ||
  !(Number.isInteger(COMMANDS) && COMMANDS >= 1 && COMMANDS <= 10_000)
) {
  console.error(`Error: bad --rounds or --commands\n${USAGE}`);
  Deno.exit(2);
}
/** Issue 13's goals: the sshd idle, MiB RSS; its growth over the commands, %. */
const GOAL_IDLE_MIB = 64;
const GOAL_GROWTH_PCT = 5;
const MiB = 1024 * 1024;

const load = () => Deno.readTextFileSync("/proc/loadavg").split(" ").slice(0, 3).join(" ");

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
}

/** RSS of a process, MiB, and by kind of mapping (smaps). */
function memoryOf(pid: number): { rss: number; binary: number; heap: number; anon: number } {
  const by = { rss: 0, binary: 0, heap: 0, anon: 0 };
  let kind: "binary" | "heap" | "anon" | "" = "";
  for (const line of Deno.readTextFileSync(`/proc/${pid}/smaps`).split("\n")) {
    const m = line.match(/^[0-9a-f]+-[0-9a-f]+ \S+ \S+ \S+ \S+\s*(.*)$/);
    if (m) {
      kind = m[1] === Deno.execPath() || m[1].endsWith("/deno")
        ? "binary"
        : m[1] === "[heap]"
        ? "heap"
        : m[1] === ""
        ? "anon"
        : "";
      continue;
    }
    const r = line.match(/^Rss:\s+(\d+)/);
    if (!r) continue;
    by.rss += Number(r[1]) / 1024;
    if (kind) by[kind] += Number(r[1]) / 1024;
  }
  return by;
}

/** A process started by the bench, its stderr gathered, ended by `stop()`. */
function start(argv: string[], env: Record<string, string> = {}) {
  const proc = new Deno.Command(argv[0], {
    args: argv.slice(1),
    env,
    stdin: "piped", // the sshd runs until its stdin closes (--supervised)
    stdout: "null",
    stderr: "piped",
  }).spawn();
  const stdin = proc.stdin.getWriter();
  let exited = false;
  proc.status.then(() => exited = true);
  const out = { log: "" };
  const reading = (async () => {
    for await (const chunk of proc.stderr.pipeThrough(new TextDecoderStream())) out.log += chunk;
  })();
  return {
    pid: proc.pid,
    out,
    exited: () => exited,
    async stop() {
      try {
        proc.kill("SIGTERM");
      } catch { /* ended */ }
      await stdin.close().catch(() => {});
      await proc.status;
      await reading;
    },
  };
}

const dir = await Deno.makeTempDir({ prefix: "kaos_sshd_memory_" });
const running: { stop(): Promise<void> }[] = [];
try {
  const bundle = async (out: string, ...opts: string[]) => {
    const p = await new Deno.Command(`${ROOT}/buildroot/appliance/bundle-front-ends`, {
      args: [...opts, out],
    }).output();
    if (p.code !== 0) {
      throw new Error(`bundle-front-ends failed: ${new TextDecoder().decode(p.stderr)}`);
    }
  };
  await bundle(`${dir}/kaos`);
  await bundle(`${dir}/full`, "--full-ssh2");
  // The sshd (and the bare Deno beside it) with the front-ends' V8 flags, as on the appliance.
  const deno = [Deno.execPath(), "run", "-A", FRONT_END_V8_FLAGS_OPTION, "--no-config"]
    .concat(["--cached-only"]);
  const sshdArgv = (js: string, state: string, port: number) => [
    ...deno,
    ...[js, "--supervised", "--state", state, "--port", String(port), "--listen", "127.0.0.1"],
  ];
  const state = `${dir}/state`;
  await Deno.mkdir(state);

  /** RSS of one sshd 4 s after it listens. */
  const idle = async (js: string) => {
    const p = start(sshdArgv(js, state, freePort()));
    try {
      await waitUntil(`${js} listening`, 120_000, () => {
        if (p.exited()) throw new Error(`${js} ended:\n${p.out.log}`);
        return p.out.log.includes("listening");
      });
      await sleep(4000);
      return memoryOf(p.pid).rss;
    } finally {
      await p.stop();
    }
  };
  const bare = async () => {
    await Deno.writeTextFile(`${dir}/bare.js`, "setInterval(() => {}, 1000);\n");
    const p = start([...deno, `${dir}/bare.js`]);
    try {
      await sleep(4000);
      return memoryOf(p.pid).rss;
    } finally {
      await p.stop();
    }
  };
  // First runs: the host keys, Deno's code cache of each bundle.
  await idle(`${dir}/kaos/sshd.js`);
  await idle(`${dir}/full/sshd.js`);
  const stubbed: number[] = [], full: number[] = [], bares: number[] = [];
  for (let i = 0; i < ROUNDS; i++) {
    stubbed.push(await idle(`${dir}/kaos/sshd.js`));
    full.push(await idle(`${dir}/full/sshd.js`));
    bares.push(await bare());
  }
  const f = (xs: number[]) =>
    `${median(xs).toFixed(1)} MiB [${xs.map((x) => x.toFixed(1)).join(" ")}]`;
  console.log(`bench/sshd_memory: ${ROUNDS} rounds, load ${load()}; medians [rounds]`);
  console.log(`sshd idle, sshd.js as on the appliance       ${f(stubbed)}`);
  console.log(`sshd idle, all of ssh2's server (--full-ssh2) ${f(full)}`);
  console.log(`bare Deno                                     ${f(bares)}`);

  // Growth over one-line commands, behind a hosted kattach.
  const mem = `${dir}/mem`;
  await Deno.mkdir(mem);
  const kattach = start(kattachArgv({ state, sshPort: 0 })); // no sshd of its own
  running.push(kattach);
  let c: IpcClient | undefined;
  await waitUntil("kattach's IPC", 120_000, async () => {
    if (kattach.exited()) throw new Error(`kattach ended:\n${kattach.out.log}`);
    c = await IpcClient.connect(`${state}/run`).catch(() => undefined);
    return c !== undefined;
  });
  const port = freePort();
  const sshd = start(sshdArgv(`${dir}/kaos/sshd.js`, state, port), { KAOS_MEMORY_LOG: mem });
  running.push(sshd);
  await waitUntil("the sshd listening", 120_000, () => sshd.out.log.includes("listening"));
  const keygen = await new Deno.Command("ssh-keygen", {
    args: ["-q", "-t", "ed25519", "-N", "", "-C", "bench", "-f", `${dir}/key`],
  }).output();
  if (keygen.code !== 0) throw new Error("ssh-keygen failed");
  await c!.call("auth.keys.add", { key: (await Deno.readTextFile(`${dir}/key.pub`)).trim() });
  c!.close();
  const ssh = [
    ...["-F", "/dev/null", "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null"],
    ...["-o", "LogLevel=ERROR", "-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes"],
    ...["-i", `${dir}/key`, "-p", String(port)],
    ...["-o", "ControlMaster=auto", "-o", `ControlPath=${dir}/cm`],
  ];
  const master = new Deno.Command("ssh", {
    args: [...ssh, "-o", "ControlPersist=yes", "-N", "aqcli@127.0.0.1"],
    stdin: "null",
    stdout: "null",
    stderr: "null",
  }).spawn();
  running.push({
    async stop() {
      await new Deno.Command("ssh", { args: [...ssh, "-O", "exit", "aqcli@127.0.0.1"] }).output();
      await master.status;
    },
  });
  await waitUntil(
    "the ssh control master",
    60_000,
    () => Deno.stat(`${dir}/cm`).then(() => true, () => false),
  );
  let failed = 0;
  const oneLine = async (n: number) => {
    let next = 0;
    await Promise.all([0, 1, 2, 3].map(async () => {
      while (next++ < n) {
        const o = await new Deno.Command("ssh", {
          args: [...ssh, "aqcli@127.0.0.1", "system", "status", "--json"],
          stdout: "null",
          stderr: "null",
        }).output();
        if (o.code !== 0) failed++;
      }
    }));
  };
  const sample = async (label: string) => {
    await sleep(300); // a fresh memory log record (every 250 ms)
    const log = [...Deno.readDirSync(mem)].find((e) => e.name === `sshd-${sshd.pid}.json`);
    const heap = log
      ? JSON.parse(await Deno.readTextFile(`${mem}/${log.name}`)).heapUsed / MiB
      : NaN;
    const m = memoryOf(sshd.pid);
    console.log(
      `${label.padEnd(34)} RSS ${m.rss.toFixed(1)} MiB: deno binary ${m.binary.toFixed(1)}, ` +
        `glibc heap ${m.heap.toFixed(1)}, other anonymous ${m.anon.toFixed(1)}; JS heap used ${
          heap.toFixed(1)
        }`,
    );
    return m.rss;
  };
  await oneLine(100);
  await sleep(2000);
  const warm = await sample("after 100 one-line commands");
  const t0 = performance.now();
  await oneLine(COMMANDS);
  const secs = (performance.now() - t0) / 1000;
  await sleep(2000);
  await sample(`${COMMANDS} more (${secs.toFixed(0)} s), 2 s later`);
  await sleep(15_000);
  const settled = await sample("the same, 17 s after the last");
  if (failed) console.log(`${failed} of ${COMMANDS + 100} commands failed`);
  const growth = ((settled - warm) / warm) * 100;
  const met = (ok: boolean) => ok ? "met" : "NOT met";
  console.log(
    `goal: sshd idle as on the appliance ${median(stubbed).toFixed(1)} MiB (≤ ${GOAL_IDLE_MIB}) ${
      met(median(stubbed) <= GOAL_IDLE_MIB)
    }; all of ssh2 ${median(full).toFixed(1)}, bare Deno ${
      median(bares).toFixed(1)
    }; load ${load()}`,
  );
  console.log(
    `goal: sshd growth over ${COMMANDS} one-line commands, settled ${
      growth.toFixed(1)
    } % (≤ ${GOAL_GROWTH_PCT} %) ${met(growth <= GOAL_GROWTH_PCT && failed === 0)}; load ${load()}`,
  );
} finally {
  for (const p of running.reverse()) await p.stop().catch(() => {});
  await Deno.remove(dir, { recursive: true }).catch(() => {});
}
