/**
 * Power-off benchmark: `instance stop` of a ready guest (the `web` fixture on a hosted kattach,
 * TCG), `--rounds` times (default 10) on each machine (microvm, q35): each round starts the
 * instance and waits for `running`, then stops it at once. Prints per round the presses its last
 * exit names, the stop's time (the IPC call to its answer), when the guest said
 * `KAOS-GUEST: powering off` on its console (polled every 10 ms) and the load average; then per
 * machine the rounds at 1 press and min / median / max. Prints figures only.
 *
 *   scripts/deno run -A bench/poweroff.ts [--rounds R] [--machines microvm,q35]
 */
import type { Instance } from "../ipc/mod.ts";
import { parseCliOrExit } from "../lib/cli_args.ts";
import { kattachArgv } from "../lib/hosted_kattach.ts";
import { killStateGuests } from "./_guests.ts";
import { connectKattach } from "./_util.ts";

const ROOT = new URL("..", import.meta.url).pathname.replace(/\/$/, "");
const USAGE =
  "usage: bench/poweroff.ts [--rounds R (1-50, default 10)] [--machines microvm,q35 (default both)]";
const cli = parseCliOrExit(Deno.args, {
  usage: USAGE,
  options: { rounds: { type: "string" }, machines: { type: "string" } },
});
const rounds = Number(cli.values.rounds ?? 10);
const MACHINES = ["microvm", "q35"] as const;
const machines = (cli.values.machines ?? "microvm,q35").split(",") as (typeof MACHINES)[number][];
if (
  !Number.isInteger(rounds) || rounds < 1 || rounds > 50 ||
  machines.some((m) => !MACHINES.includes(m))
) {
  console.error(`Error: bad rounds or machine\n${USAGE}`);
  Deno.exit(2);
}

function load(): string {
  return Deno.readTextFileSync("/proc/loadavg").split(" ").slice(0, 3).join(" ");
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
}

const build = await new Deno.Command(`${ROOT}/fixtures/build-modules`, { stdout: "null" }).output();
if (!build.success) throw new Error("fixtures/build-modules failed");
const dir = await Deno.makeTempDir({ prefix: "kaos-bench-poweroff-" });
const state = `${dir}/state`;
const [deno, ...args] = kattachArgv({ state, sshPort: 0, denoOptions: [] });
const kattach = new Deno.Command(deno, { args, stdin: "null", stdout: "null", stderr: "null" })
  .spawn();
const client = await connectKattach(state, 30_000);
const serialLog = `${state}/instances/web-1/serial.log`;
try {
  for (const m of ["vkaos", "web"]) {
    await client.call("module.import", { path: `${ROOT}/fixtures/out/${m}` });
  }
  await client.call("configGroup.add", { module: "web", name: "site", values: { title: "x" } });
  await client.call("vmimage.create", {
    name: "web",
    modules: ["web"],
    configGroups: ["site"],
    vlans: [],
  });
  await client.call("deploy", { vmimage: "web", count: 1, noStart: true });
  for (const machine of machines) {
    await client.call("instance.set", { name: "web-1", machine });
    const stops: number[] = [];
    let onePress = 0;
    for (let r = 0; r < rounds; r++) {
      const up = await client.call("instance.start", { name: "web-1", wait: true }) as Instance;
      if (up.state !== "running") throw new Error(`web-1 is ${up.state}: ${up.lastExit ?? ""}`);
      const from = Deno.statSync(serialLog).size;
      const before = load();
      const t0 = performance.now();
      let said = NaN;
      const poll = setInterval(() => {
        if (!Number.isNaN(said)) return;
        const text = new TextDecoder().decode(Deno.readFileSync(serialLog).subarray(from));
        if (text.includes("KAOS-GUEST: powering off")) said = performance.now() - t0;
      }, 10);
      const down = await client.call("instance.stop", { name: "web-1" }) as Instance;
      const took = performance.now() - t0;
      clearInterval(poll);
      const presses = Number(down.lastExit?.match(/after (\d+) press/)?.[1] ?? NaN);
      if (presses === 1) onePress++;
      stops.push(took);
      console.log(
        `${machine} round ${r + 1}: ${presses} press(es), stop ${took.toFixed(0)} ms, ` +
          `"powering off" at ${said.toFixed(0)} ms, load ${before} (${down.lastExit})`,
      );
    }
    console.log(
      `${machine}: 1 press in ${onePress}/${rounds}; stop min ${
        Math.min(...stops).toFixed(0)
      } / median ${median(stops).toFixed(0)} / max ${
        Math.max(...stops).toFixed(0)
      } ms; load ${load()}`,
    );
  }
} finally {
  client.close();
  killStateGuests(state);
  kattach.kill("SIGTERM");
  await kattach.status;
  await Deno.remove(dir, { recursive: true }).catch(() => {});
}
