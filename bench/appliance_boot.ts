/**
 * Build and boot figures of the KaOS appliance under QEMU (TCG here): the image build (cached
 * and forced), then boots with scripts/run-appliance in daemon mode on a fresh data disk. For each
 * boot: seconds from starting run-appliance to kattach's first line (PID 1 up), to its ready
 * line, and to the SSH banner on the forwarded port, plus the guest's own uptime at those lines.
 * The first boot makes the sshd's host keys; later boots find them on the data disk.
 * Prints figures only (no assertions on time).
 *
 *   scripts/deno run -A bench/appliance_boot.ts [boots=2]
 */
import { parseCliOrExit } from "../lib/cli_args.ts";

const ROOT = new URL("..", import.meta.url).pathname.replace(/\/$/, "");
const USAGE = "usage: bench/appliance_boot.ts [BOOTS (default 2)]";
const cli = parseCliOrExit(Deno.args, { usage: USAGE, options: {}, positionals: true });
const boots = Number(cli.positionals[0] ?? 2);
if (!Number.isInteger(boots) || boots < 1 || cli.positionals.length > 1) {
  console.error(`Error: BOOTS is a positive whole number\n${USAGE}`);
  Deno.exit(2);
}

async function timed(argv: string[]): Promise<number> {
  const t = performance.now();
  const out = await new Deno.Command(argv[0], { args: argv.slice(1), stdin: "null" }).output();
  if (out.code !== 0) {
    throw new Error(`${argv.join(" ")}:\n${new TextDecoder().decode(out.stderr)}`);
  }
  return performance.now() - t;
}

function freePort(): number {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (l.addr as Deno.NetAddr).port;
  l.close();
  return port;
}

async function until<T>(f: () => Promise<T | null>, ms: number): Promise<T> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    const v = await f();
    if (v !== null) return v;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error("timed out");
}

async function banner(port: number): Promise<string | null> {
  try {
    const c = await Deno.connect({ hostname: "127.0.0.1", port });
    try {
      const buf = new Uint8Array(64);
      const n = await c.read(buf);
      const text = n ? new TextDecoder().decode(buf.subarray(0, n)) : "";
      return text.startsWith("SSH-") ? text : null;
    } finally {
      c.close();
    }
  } catch {
    return null;
  }
}

const s = (ms: number) => `${(ms / 1000).toFixed(1)} s`;

console.log(`image build, cached:  ${s(await timed([`${ROOT}/buildroot/appliance/build`]))}`);
console.log(
  `image build, forced:  ${s(await timed([`${ROOT}/buildroot/appliance/build`, "--force"]))}`,
);

const dir = await Deno.makeTempDir({ prefix: "kaos-appliance-bench-" });
try {
  for (let i = 1; i <= boots; i++) {
    const port = freePort();
    const log = `${dir}/serial-${i}.log`;
    const pidfile = `${dir}/qemu-${i}.pid`;
    const t0 = performance.now();
    await timed([
      `${ROOT}/scripts/run-appliance`,
      ...["--no-build", "--daemon", "--port", String(port), "--disk", `${dir}/disk.img`],
      ...["--stick", `${dir}/stick.img`],
      ...["--disk-size", "1G", "--pidfile", pidfile, "--serial-log", log],
    ]);
    const read = () => Deno.readTextFile(log).catch(() => "");
    try {
      const pid1 = await until(
        async () => (await read()).match(/appliance mode \(uptime ([\d.]+) s\)/),
        240_000,
      );
      const tPid1 = performance.now() - t0;
      const ready = await until(
        async () => (await read()).match(/ready \(appliance.*uptime ([\d.]+) s\)/),
        240_000,
      );
      const tReady = performance.now() - t0;
      await until(() => banner(port), 240_000);
      const tSsh = performance.now() - t0;
      console.log(
        `boot ${i}: PID 1 up ${s(tPid1)} (guest uptime ${pid1[1]} s), ready ${s(tReady)} ` +
          `(guest uptime ${ready[1]} s), SSH banner ${s(tSsh)}`,
      );
    } finally {
      const pid = Number(await Deno.readTextFile(pidfile).catch(() => "0"));
      if (pid > 1) {
        Deno.kill(pid, "SIGTERM");
        await new Promise((r) => setTimeout(r, 1000));
      }
    }
  }
} finally {
  await Deno.remove(dir, { recursive: true });
}
