/**
 * Boot figures of the KaOS image booted as a USB stick (scripts/run-appliance: QEMU q35, xHCI +
 * usb-storage, SeaBIOS, GRUB with its 1 s menu), next to two baselines booted the same way (same
 * kernel, GRUB, compression and stick, built with `scripts/build-image --bare`):
 *   busybox  an initramfs of busybox-static only, its PID 1 a shell script printing a marker;
 *   hello    the appliance's launcher + Deno + its libraries, PID 1 a one-line Deno "hello".
 * For each boot, seconds after QEMU started (run-appliance returned, -daemonize): GRUB booting its
 * entry, PID 1's first line (with the guest's uptime then: the kernel's share), kattach ready and
 * the SSH banner on the forwarded port (appliance only); then the ratios and the sizes. Prints
 * figures only (no assertions on time). `--compare CPIO` boots, in the same rounds and the same
 * way, an image around another appliance initramfs (e.g. an earlier build's), and prints both
 * appliances' PID 1 → SSH banner (GRUB and the kernel's share aside: --bare carries no queue).
 * `--compare-image IMG` boots a whole image file as it is (e.g. an earlier build's
 * build/kaos-<version>.img) in the same rounds: an A/B of everything, GRUB's reads included.
 * It ends with the goal's line: `goal: banner / hello PID 1 = X (≤ 1.5): met|not met`.
 *
 *   scripts/deno run -A bench/appliance_boot.ts [boots=1] [--uefi] [--compare CPIO]…
 *     [--compare-image IMG]…
 */
import { parseCliOrExit } from "../lib/cli_args.ts";

const USAGE =
  `usage: bench/appliance_boot.ts [BOOTS] [--uefi] [--compare CPIO]… [--compare-image IMG]…
  BOOTS                boots of each image (1-10, default 1)
  --uefi               boot under OVMF instead of SeaBIOS
  --compare CPIO       also boot an image around this appliance initramfs (uncompressed newc cpio,
                       e.g. an earlier build/appliance/initramfs.img), the same way, in each round
                       (repeatable: compare1, compare2, …)
  --compare-image IMG  also boot this image file as it is (e.g. an earlier build's
                       build/kaos-<version>.img), in each round (repeatable: image1, image2, …)`;
const cli = parseCliOrExit(Deno.args, {
  usage: USAGE,
  options: {
    uefi: { type: "boolean" },
    compare: { type: "string", multiple: true },
    "compare-image": { type: "string", multiple: true },
  },
  positionals: true,
});
/** The --compare images: name (compare1, compare2, …) → initramfs. */
const compareArgs: string[] = [cli.values.compare ?? []].flat(); // one or more (multiple)
const compares = compareArgs.map((path, i) => [`compare${i + 1}`, path] as const);
/** The --compare-image images: name (image1, image2, …) → image file. */
const imageArgs: string[] = [cli.values["compare-image"] ?? []].flat();
const compareImages = imageArgs.map((path, i) => [`image${i + 1}`, path] as const);
for (const [name, path] of [...compares, ...compareImages]) {
  if (!Deno.statSync(path).isFile) {
    const what = name.startsWith("image")
      ? "--compare-image takes an image"
      : "--compare takes an initramfs";
    console.error(`Error: ${what} file, not ${path}\n${USAGE}`);
    Deno.exit(2);
  }
}
const ROOT = new URL("..", import.meta.url).pathname.replace(/\/$/, "");
const uefi = cli.values.uefi ?? false;
const boots = Number(cli.positionals[0] ?? 1);
if (cli.positionals.length > 1 || !Number.isInteger(boots) || boots < 1 || boots > 10) {
  console.error(`Error: BOOTS is a number from 1 to 10\n${USAGE}`);
  Deno.exit(2);
}
const PID1 = /appliance mode \(uptime ([\d.]+) s\)/;

async function sh(argv: string[], opts: { cwd?: string } = {}): Promise<string> {
  const out = await new Deno.Command(argv[0], { args: argv.slice(1), stdin: "null", ...opts })
    .output();
  const text = new TextDecoder().decode(out.stdout);
  if (out.code !== 0) {
    throw new Error(`${argv.join(" ")}:\n${text}${new TextDecoder().decode(out.stderr)}`);
  }
  return text;
}

function freePort(): number {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (l.addr as Deno.NetAddr).port;
  l.close();
  return port;
}

/**
 * One probe of the SSH banner on the forwarded port, given up after `ms`. QEMU's user-mode
 * network accepts the connection at once and only then tries the guest: while the guest cannot
 * answer (no address on eth0 yet) its SYNs are retried with a growing backoff, so a probe left
 * waiting sees the banner seconds after the sshd listens (and, awaited in the serial log's loop,
 * held back that log's timestamps too), and a probe given up early leaves QEMU still trying
 * (such connections reach the sshd later and count as logins in progress). So the probes start
 * once kattach has logged eth0's address: from then on the guest answers at once, with a reset
 * or with the banner.
 */
async function banner(port: number, ms: number): Promise<boolean> {
  let conn: Deno.TcpConn | undefined;
  const timer = setTimeout(() => conn?.close(), ms);
  try {
    conn = await Deno.connect({ hostname: "127.0.0.1", port });
    const buf = new Uint8Array(64);
    const n = await conn.read(buf);
    return n !== null && new TextDecoder().decode(buf.subarray(0, n)).startsWith("SSH-");
  } catch {
    return false; // refused, reset, or closed by the timer
  } finally {
    clearTimeout(timer);
    try {
      conn?.close();
    } catch { /* the timer closed it */ }
  }
}

/** A newc cpio of `dir` (uncompressed), as buildroot/appliance/build writes it. */
async function cpio(dir: string, out: string): Promise<void> {
  await sh([
    "sh",
    "-c",
    `cd "${dir}" && find . -mindepth 1 -printf '%P\\n' | LC_ALL=C sort | ` +
    `cpio --quiet -o -H newc -R 0:0 > "${out}"`,
  ]);
}

/** The baselines' initramfs trees: busybox only, and the appliance's Deno with a hello PID 1. */
async function baselines(work: string): Promise<{ busybox: string; hello: string }> {
  const initramfs = `${ROOT}/build/appliance/initramfs.img`;
  const bb = `${work}/busybox-root`;
  await sh(["mkdir", "-p", `${bb}/bin`, `${bb}/sbin`, `${bb}/dev`, `${bb}/proc`]);
  await sh(["cp", "/bin/busybox", `${bb}/bin/busybox`]);
  await sh(["mknod", "-m", "600", `${bb}/dev/console`, "c", "5", "1"]);
  await Deno.writeTextFile(
    `${bb}/sbin/kattach`,
    "#!/bin/busybox sh\n/bin/busybox mount -t proc proc /proc\n" +
      'echo "kattach: PID 1: busybox, appliance mode (uptime $(/bin/busybox cut -d" " -f1 /proc/uptime) s)"\n' +
      "while :; do /bin/busybox sleep 3600; done\n",
    { mode: 0o755 },
  );
  // hello: the appliance's own launcher, deno and libraries, extracted from its initramfs.
  const hello = `${work}/hello-root`;
  await Deno.mkdir(hello, { recursive: true });
  await sh([
    "sh",
    "-c",
    `cpio --quiet -id 'sbin/kattach' 'init' 'bin/deno' 'lib/*' 'lib64/*' 'usr/lib/x86_64-linux-gnu/*' ` +
    `'etc/ld.so.cache' 'dev/*' 'proc' 'sys' 'tmp' < "${initramfs}"`,
  ], { cwd: hello });
  // The libraries the image moved to its second archive (QEMU's) were in hello from the start:
  // hello keeps every library the appliance carries, as when its baseline was first measured.
  const late = `${ROOT}/build/appliance/late.cpio.zst`;
  if (await Deno.stat(late).then(() => true, () => false)) {
    await sh([
      "sh",
      "-c",
      `zstd -q -d -c "${late}" | cpio --quiet -id 'lib/*' 'lib64/*' 'usr/lib/x86_64-linux-gnu/*'`,
    ], { cwd: hello });
  }
  await sh(["rm", "-rf", `${hello}/lib/modules`, `${hello}/usr/lib/x86_64-linux-gnu/qemu`]);
  await Deno.mkdir(`${hello}/kaos`, { recursive: true });
  await Deno.writeTextFile(
    `${hello}/kaos/kaos.js`,
    'const up = Deno.readTextFileSync("/proc/uptime").split(" ")[0];\n' +
      "console.error(`kattach: PID 1: deno ${Deno.version.deno}, appliance mode (uptime ${up} s)`);\n" +
      "setInterval(() => {}, 3_600_000);\n",
  );
  const out = { busybox: `${work}/busybox.cpio`, hello: `${work}/hello.cpio` };
  await cpio(bb, out.busybox);
  await cpio(hello, out.hello);
  return out;
}

interface Boot {
  grub: number;
  pid1: number;
  uptime: number;
  ready?: number;
  ssh?: number;
  /** The appliance's milestones: when each log line matching MILESTONE first showed. */
  timeline: [number, string][];
}

/** kattach's log lines worth a place in the breakdown (phases, the sshd, the lease, the disk). */
const MILESTONE =
  /kattach(-launcher)?: (exec|PID 1|phase \S+ (done|failed)|started in|ready \(|sshd|ssh: listening|eth0 (\S+ \(DHCP|has no DHCP)|kernel modules|guest runtime|WARNING|usb-storage waits|data disk|firewall: generation)/;

async function bootOnce(image: string, dir: string, appliance: boolean): Promise<Boot> {
  const port = freePort();
  const log = `${dir}/serial.log`;
  const pidfile = `${dir}/qemu.pid`;
  await Deno.remove(log).catch(() => {});
  await sh([
    `${ROOT}/scripts/run-appliance`,
    ...["--image", image, "--daemon", "--port", String(port), "--stick", `${dir}/stick.img`],
    ...["--disk", `${dir}/disk.img`, "--disk-size", "1G", "--stick-size", "1G"],
    ...["--pidfile", pidfile, "--serial-log", log, ...(uefi ? ["--uefi"] : [])],
  ]);
  const t0 = performance.now();
  const at: Partial<Boot> = {};
  const timeline: [number, string][] = [];
  let seen = 0;
  // The banner is probed beside the serial log's reading (never holding it up), once eth0 has
  // its address (kattach logs it; see banner()).
  let probing = appliance;
  let addressed = false;
  const prober = (async () => {
    while (probing && at.ssh === undefined) {
      if (addressed && await banner(port, 2000)) {
        at.ssh = (performance.now() - t0) / 1000;
      } else await new Promise((r) => setTimeout(r, 100));
    }
  })();
  try {
    const end = Date.now() + 600_000;
    while (Date.now() < end) {
      const text = await Deno.readTextFile(log).catch(() => "");
      const now = (performance.now() - t0) / 1000;
      const lines = text.split("\n");
      for (; seen < lines.length - 1; seen++) {
        const line = lines[seen];
        const said = line.slice(line.search(/kattach(-launcher)?: /)).replace(/^kattach: /, "")
          .trim();
        // Each line comes twice (/dev/console and the serial sink both reach ttyS0): once here.
        if (MILESTONE.test(line) && !timeline.some(([, t]) => t === said)) {
          timeline.push([now, said]);
        }
      }
      if (at.grub === undefined && text.includes("Booting `")) at.grub = now;
      if (/kattach: eth0 \S+ \((DHCP|static)/.test(text)) addressed = true;
      const m = text.match(PID1);
      if (at.pid1 === undefined && m) [at.pid1, at.uptime] = [now, Number(m[1])];
      if (!appliance && at.pid1 !== undefined) break;
      if (appliance && at.ready === undefined && /kattach: ready \(appliance/.test(text)) {
        at.ready = now;
      }
      // The banner may come before kattach's ready line (the sshd runs beside its phases).
      if (appliance && at.ssh !== undefined && at.ready !== undefined) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    if (at.pid1 === undefined || (appliance && (at.ssh === undefined || at.ready === undefined))) {
      throw new Error(`${image}: no PID 1 line, SSH banner or ready line within 600 s`);
    }
    return { ...at, timeline } as Boot;
  } finally {
    probing = false;
    await prober;
    const pid = Number(await Deno.readTextFile(pidfile).catch(() => "0"));
    if (pid > 1) {
      Deno.kill(pid, "SIGKILL");
      await new Promise((r) => setTimeout(r, 500));
    }
  }
}

/** The 1-minute load average. */
async function loadAverage(): Promise<string> {
  return (await Deno.readTextFile("/proc/loadavg")).split(" ")[0];
}

const s = (x: number | undefined) => x === undefined ? "-" : `${x.toFixed(1)} s`;
const mib = (bytes: number) => `${(bytes / 1048576).toFixed(1)} MiB`;

await sh([`${ROOT}/scripts/build-image`]);
const image = (await sh([`${ROOT}/scripts/build-image`, "--print-path"])).trim();
const work = await Deno.makeTempDir({ prefix: "kaos-boot-bench-" });
try {
  const trees = await baselines(work);
  const images: Record<string, string> = { appliance: image };
  for (const name of ["busybox", "hello"] as const) {
    images[name] = `${work}/${name}.img`;
    await sh([`${ROOT}/scripts/build-image`, "--bare", trees[name], images[name]]);
  }
  for (const [name, path] of compares) {
    images[name] = `${work}/${name}.img`;
    await sh([`${ROOT}/scripts/build-image`, "--bare", path, images[name]]);
    console.log(`${name}: ${path}`);
  }
  for (const [name, path] of compareImages) {
    images[name] = path;
    console.log(`${name}: ${path}`);
  }
  const sizes: Record<string, [number, number]> = {
    appliance: [
      Deno.statSync(`${ROOT}/build/appliance/initramfs.img`).size,
      Deno.statSync(image).size,
    ],
    busybox: [Deno.statSync(trees.busybox).size, Deno.statSync(images.busybox).size],
    hello: [Deno.statSync(trees.hello).size, Deno.statSync(images.hello).size],
    ...Object.fromEntries(
      compares.map(([name, path]) => [
        name,
        [Deno.statSync(path).size, Deno.statSync(images[name]).size] as [number, number],
      ]),
    ),
  };
  for (const [name, path] of compareImages) sizes[name] = [NaN, Deno.statSync(path).size];
  const names = [
    "busybox",
    "hello",
    "appliance",
    ...compares.map(([name]) => name),
    ...compareImages.map(([name]) => name),
  ];
  const full = (name: string) =>
    name === "appliance" || name.startsWith("compare") || name.startsWith("image");
  const results: Record<string, Boot[]> = Object.fromEntries(names.map((n) => [n, []]));
  const loadStart = await loadAverage();
  console.log(
    `${uefi ? "OVMF" : "SeaBIOS"}, TCG; ${new Date().toISOString().slice(0, 16)}Z, load ` +
      `${loadStart}; seconds after QEMU started:`,
  );
  for (let i = 1; i <= boots; i++) {
    for (const name of names) {
      const dir = `${work}/${name}-${i}`;
      await Deno.mkdir(dir);
      const b = await bootOnce(images[name], dir, full(name));
      results[name].push(b);
      console.log(
        `  ${name.padEnd(9)} boot ${i}: GRUB boots ${s(b.grub)}, PID 1 ${s(b.pid1)} ` +
          `(guest uptime ${b.uptime.toFixed(1)} s), ready ${s(b.ready)}, SSH banner ${s(b.ssh)}`,
      );
      if (full(name) && i === 1) {
        // The serial port lags behind the guest under load: the figures inside the lines (ms of
        // each phase, the guest's uptime) are the guest's own.
        console.log(
          `  ${name} boot 1, breakdown (s after QEMU started when the serial port ` +
            "showed it: kattach's log line):",
        );
        for (const [t, line] of b.timeline) {
          console.log(`    ${t.toFixed(1).padStart(5)}  ${line.slice(0, 110)}`);
        }
      }
      await Deno.remove(dir, { recursive: true });
    }
  }
  const median = (xs: number[]) => {
    const o = [...xs].sort((a, b) => a - b), m = Math.floor(o.length / 2);
    return o.length % 2 === 1 ? o[m] : (o[m - 1] + o[m]) / 2; // of two boots: their mean
  };
  const hello = median(results.hello.map((b) => b.pid1));
  const busybox = median(results.busybox.map((b) => b.pid1));
  const ssh = median(results.appliance.map((b) => b.ssh!));
  const pid1 = median(results.appliance.map((b) => b.pid1));
  console.log(
    `ratios (medians): appliance SSH banner / hello PID 1 = ${(ssh / hello).toFixed(2)}; ` +
      `appliance PID 1 / hello PID 1 = ${(pid1 / hello).toFixed(2)}; ` +
      `hello / busybox = ${(hello / busybox).toFixed(2)}`,
  );
  console.log(
    "breakdown (medians, s): before the kernel (firmware, GRUB's menu and reads, bzImage) | " +
      "kernel start → PID 1's line (unpacking, Deno, the bundle) | PID 1 → SSH banner",
  );
  for (const name of names) {
    const rs = results[name];
    const pre = median(rs.map((b) => b.pid1 - b.uptime));
    const up = median(rs.map((b) => b.uptime));
    const banner = full(name) ? median(rs.map((b) => b.ssh! - b.pid1)).toFixed(1) : "-";
    console.log(`  ${name.padEnd(9)} ${pre.toFixed(1)} | ${up.toFixed(1)} | ${banner}`);
  }
  for (const name of names.filter(full)) {
    const spans = results[name].map((b) => b.ssh! - b.pid1);
    console.log(
      `  ${name.padEnd(9)} PID 1 → SSH banner: median ${median(spans).toFixed(1)} s ` +
        `(${spans.map((x) => x.toFixed(1)).join(", ")}); PID 1 → ready: median ` +
        `${median(results[name].map((b) => b.ready! - b.pid1)).toFixed(1)} s`,
    );
  }
  for (const [name, [initrd, img]] of Object.entries(sizes)) {
    const what = Number.isNaN(initrd) ? "" : `initramfs ${mib(initrd)} (uncompressed), `;
    console.log(`  ${name.padEnd(9)} ${what}image ${mib(img)}`);
  }
  const late = await Deno.stat(`${ROOT}/build/appliance/late.cpio.zst`).catch(() => undefined);
  if (late) {
    console.log(`  appliance second archive (read by kattach after the banner) ${mib(late.size)}`);
  }
  const ratio = ssh / hello;
  console.log(
    `goal: banner / hello PID 1 = ${ratio.toFixed(2)} (≤ 1.5): ${
      ratio <= 1.5 ? "met" : "not met"
    } ` +
      `(banner ${ssh.toFixed(1)} s, hello PID 1 ${hello.toFixed(1)} s, medians of ${boots}; ` +
      `load ${loadStart} at the start, ${await loadAverage()} at the end)`,
  );
} finally {
  await Deno.remove(work, { recursive: true });
}
