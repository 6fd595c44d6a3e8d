/**
 * Catalogue benchmark: per App Module (the busybox `web` fixture as the baseline, then nginx,
 * Redis and PostgreSQL from modules/build), in one run on one hosted kattach: the image size;
 * deploy → ready (appmgr readiness, one instance); and reload → change visible: from the start of
 * `config-group set` (reload through the guest agent) until the host sees the new value (web and
 * nginx: the page's title over HTTP; Redis: PING answered with the new password; PostgreSQL: a
 * psql login with the new password). Goals printed beside: reload visible within 1 s under TCG,
 * ready within 2× of `web`. Prints figures only; each figure is the median of --rounds (default 1).
 *
 *   scripts/deno run -A bench/modules.ts [--rounds R] [MODULE…]   (default: nginx redis postgresql)
 */
import { IpcClient } from "../ipc/mod.ts";
import type { Instance } from "../ipc/mod.ts";
import { parseCliOrExit } from "../lib/cli_args.ts";

const ROOT = new URL("..", import.meta.url).pathname.replace(/\/$/, "");
const USAGE = "usage: bench/modules.ts [--rounds R (1-10, default 1)] [nginx|redis|postgresql…]";
const cli = parseCliOrExit(Deno.args, {
  usage: USAGE,
  options: { rounds: { type: "string" } },
  positionals: true,
});
const rounds = Number(cli.values.rounds ?? 1);
const real = cli.positionals.length > 0 ? cli.positionals : ["nginx", "redis", "postgresql"];
if (
  !Number.isInteger(rounds) || rounds < 1 || rounds > 10 ||
  real.some((m) => !["nginx", "redis", "postgresql"].includes(m))
) {
  console.error(`Error: bad rounds or module\n${USAGE}`);
  Deno.exit(2);
}

/** How to configure a module, and how the host sees a configuration change. */
interface Subject {
  name: string;
  dir: string;
  port: number;
  values: (round: number) => Record<string, string>;
  change: (round: number) => Record<string, string>;
  /** True once the host sees `change(round)` in effect on the forwarded port. */
  visible: (hostPort: number, round: number) => Promise<boolean>;
}

async function title(port: number): Promise<string> {
  try {
    const res = await fetch(`http://127.0.0.1:${port}/`, { signal: AbortSignal.timeout(2000) });
    return (await res.text()).match(/<title>(.*)<\/title>/)?.[1] ?? "";
  } catch {
    return "";
  }
}

/** Redis: AUTH + PING over RESP; true when PONG comes back. */
async function redisPing(port: number, password: string): Promise<boolean> {
  let conn: Deno.Conn | undefined;
  try {
    conn = await Deno.connect({ hostname: "127.0.0.1", port });
    await conn.write(new TextEncoder().encode(`AUTH ${password}\r\nPING\r\n`));
    const buf = new Uint8Array(256);
    let text = "";
    const deadline = Date.now() + 2000;
    while (!text.includes("PONG") && !text.includes("-") && Date.now() < deadline) {
      const n = await conn.read(buf);
      if (n === null) break;
      text += new TextDecoder().decode(buf.subarray(0, n));
    }
    return text.includes("+PONG");
  } catch {
    return false;
  } finally {
    try {
      conn?.close();
    } catch { /* closed */ }
  }
}

async function psqlLogin(port: number, password: string): Promise<boolean> {
  const out = await new Deno.Command("psql", {
    args: [
      "-X",
      "-h",
      "127.0.0.1",
      "-p",
      String(port),
      "-U",
      "bench",
      "-d",
      "bench",
      "-Atc",
      "SELECT 1",
    ],
    env: { PGPASSWORD: password, PGCONNECT_TIMEOUT: "5" },
    stdout: "piped",
    stderr: "piped",
  }).output();
  return out.success;
}

const subjects: Record<string, Subject> = {
  web: {
    name: "web",
    dir: `${ROOT}/fixtures/out/web`,
    port: 80,
    values: (r) => ({ title: `web round ${r}` }),
    change: (r) => ({ title: `web reloaded ${r}` }),
    visible: async (p, r) => await title(p) === `web reloaded ${r}`,
  },
  nginx: {
    name: "nginx",
    dir: `${ROOT}/build/modules/out/nginx`,
    port: 80,
    values: (r) => ({ title: `nginx round ${r}` }),
    change: (r) => ({ title: `nginx reloaded ${r}` }),
    visible: async (p, r) => await title(p) === `nginx reloaded ${r}`,
  },
  redis: {
    name: "redis",
    dir: `${ROOT}/build/modules/out/redis`,
    port: 6379,
    values: (r) => ({ password: `before${r}` }),
    change: (r) => ({ password: `after${r}` }),
    visible: (p, r) => redisPing(p, `after${r}`),
  },
  postgresql: {
    name: "postgresql",
    dir: `${ROOT}/build/modules/out/postgresql`,
    port: 5432,
    values: (r) => ({ database: "bench", user: "bench", password: `before-pw-${r}` }),
    change: (r) => ({ password: `after-pw-${r}` }),
    visible: (p, r) => psqlLogin(p, `after-pw-${r}`),
  },
};

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
}

async function sh(cmd: string, args: string[]): Promise<void> {
  const out = await new Deno.Command(cmd, { args, stdout: "null", stderr: "piped" }).output();
  if (!out.success) throw new Error(`${cmd} failed: ${new TextDecoder().decode(out.stderr)}`);
}

async function startKattach(state: string): Promise<Deno.ChildProcess> {
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      `${ROOT}/main.ts`,
      "kattach",
      "--hosted",
      "--ssh-port",
      "0",
      "--state",
      state,
    ],
    stdin: "null",
    stdout: Deno.env.get("KLOG") ? "inherit" : "null",
    stderr: Deno.env.get("KLOG") ? "inherit" : "null",
  }).spawn();
  const deadline = Date.now() + 30_000;
  for (;;) {
    try {
      (await IpcClient.connect(`${state}/run`)).close();
      return child;
    } catch {
      if (Date.now() > deadline) throw new Error("kattach did not start within 30 s");
      await new Promise((r) => setTimeout(r, 100));
    }
  }
}

await sh(`${ROOT}/fixtures/build-modules`, []);
await sh(`${ROOT}/modules/build`, real);
const dir = await Deno.makeTempDir({ prefix: "kaos-bench-modules-" });
const state = `${dir}/state`;
const kattach = await startKattach(state);
const client = await IpcClient.connect(`${state}/run`);
type Figures = { ready: number; set: number; visible: number };
const results: { name: string; size: number; figures: Figures }[] = [];
try {
  await client.call("module.import", { path: `${ROOT}/fixtures/out/vkaos` });
  for (const s of [subjects.web, ...real.map((m) => subjects[m])]) {
    await client.call("module.import", { path: s.dir });
    const size = (await Deno.stat(`${s.dir}/${s.name}.aqi`)).size;
    const rs: Figures[] = [];
    for (let r = 0; r < rounds; r++) {
      const group = `${s.name}-${r}`;
      await client.call("configGroup.add", { module: s.name, name: group, values: s.values(r) });
      await client.call("vmimage.create", {
        name: group,
        modules: [s.name],
        configGroups: [group],
        vlans: [],
      });
      const t0 = performance.now();
      const [inst] = await client.call("deploy", {
        vmimage: group,
        count: 1,
        wait: true,
      }) as Instance[];
      const ready = performance.now() - t0;
      const shown = await client.call("instance.show", { name: inst.name }) as Instance;
      if (shown.state !== "running") throw new Error(`${inst.name} is ${shown.state}`);
      const hostPort = shown.forwards!.find((f) => f.guestPort === s.port)!.hostPort;
      const t1 = performance.now();
      const set = client.call("configGroup.set", { name: group, values: s.change(r), apply: true })
        .then(() => performance.now() - t1);
      const deadline = t1 + 60_000;
      while (!await s.visible(hostPort, r)) {
        if (performance.now() > deadline) throw new Error(`${s.name}: the change never showed`);
        await new Promise((res) => setTimeout(res, 10));
      }
      const visible = performance.now() - t1;
      rs.push({ ready, set: await set, visible });
      await client.call("instance.kill", { name: inst.name });
      await client.call("instance.del", { name: inst.name });
    }
    results.push({
      name: s.name,
      size,
      figures: {
        ready: median(rs.map((x) => x.ready)),
        set: median(rs.map((x) => x.set)),
        visible: median(rs.map((x) => x.visible)),
      },
    });
  }
} finally {
  client.close();
  try {
    for (const e of Deno.readDirSync(`${state}/instances`)) {
      const pid = Number(Deno.readTextFileSync(`${state}/instances/${e.name}/qemu.pid`).trim());
      if (pid > 1) Deno.kill(pid, "SIGKILL");
    }
  } catch { /* none left */ }
  kattach.kill("SIGTERM");
  await kattach.status;
  await Deno.remove(dir, { recursive: true }).catch(() => {});
}

const web = results[0].figures.ready;
const s = (ms: number) => `${(ms / 1000).toFixed(2)} s`;
const load = (await Deno.readTextFile("/proc/loadavg")).split(" ").slice(0, 3).join(" ");
console.log(
  `bench/modules: hosted kattach, TCG, microvm, one instance per module, medians of ${rounds} round(s); ${navigator.hardwareConcurrency} CPUs, load ${load}`,
);
console.log(
  "MODULE      IMAGE      DEPLOY→READY  ×web   (goal ≤ 2×)  SET→RETURNED  SET→VISIBLE  (goal ≤ 1 s)",
);
for (const r of results) {
  const x = r.figures.ready / web;
  console.log(
    `${r.name.padEnd(11)} ${(r.size / 1048576).toFixed(1).padStart(5)} MiB  ${
      s(r.figures.ready).padEnd(13)
    } ${x.toFixed(2).padEnd(6)} ${
      (r.name === "web" ? "baseline" : x <= 2 ? "met" : "missed").padEnd(12)
    } ${s(r.figures.set).padEnd(13)} ${s(r.figures.visible).padEnd(12)} ${
      r.figures.visible <= 1000 ? "met" : "missed"
    }`,
  );
}
