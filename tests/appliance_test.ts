/**
 * Image test: builds the appliance (buildroot/appliance/build), boots it with
 * scripts/run-appliance in daemon mode under QEMU on a free loopback port and checks, from the
 * serial log and over the forwarded port, that PID 1 is kattach, that it survives signals sent by
 * real processes in the guest, reaps orphans, mounts its data disk, and that the SSH CLI answers.
 */
import { ok as assert } from "node:assert/strict";
import { REPO_ROOT } from "./_harness.ts";

const BOOT_TIMEOUT_MS = 240_000;

async function run(argv: string[], timeoutMs: number): Promise<{ code: number; out: string }> {
  const child = new Deno.Command(argv[0], {
    args: argv.slice(1),
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const timer = setTimeout(() => child.kill("SIGKILL"), timeoutMs);
  const out = await child.output();
  clearTimeout(timer);
  const dec = new TextDecoder();
  return { code: out.code, out: dec.decode(out.stdout) + dec.decode(out.stderr) };
}

function freePort(): number {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (l.addr as Deno.NetAddr).port;
  l.close();
  return port;
}

async function readLog(path: string): Promise<string> {
  try {
    return await Deno.readTextFile(path);
  } catch {
    return "";
  }
}

/** Waits until the serial log matches, failing with the log after `ms`. */
async function waitForLog(path: string, re: RegExp, ms: number): Promise<string> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    const log = await readLog(path);
    if (re.test(log)) return log;
    if (/Kernel panic/.test(log)) throw new Error(`the guest kernel panicked:\n${log}`);
    await new Promise((r) => setTimeout(r, 500));
  }
  throw new Error(`no ${re} in the serial log within ${ms / 1000} s:\n${await readLog(path)}`);
}

/** Reads the SSH identification line on the forwarded port, retrying until `ms` pass. */
async function sshBanner(port: number, ms: number): Promise<string | null> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    try {
      const conn = await Deno.connect({ hostname: "127.0.0.1", port });
      try {
        const buf = new Uint8Array(256);
        const timer = setTimeout(() => conn.close(), 10_000);
        const n = await conn.read(buf).catch(() => null);
        clearTimeout(timer);
        if (n) return new TextDecoder().decode(buf.subarray(0, n)).split("\r\n")[0];
      } finally {
        try {
          conn.close();
        } catch { /* closed by the timer */ }
      }
    } catch { /* not listening yet */ }
    await new Promise((r) => setTimeout(r, 1000));
  }
  return null;
}

async function stopQemu(pidfile: string): Promise<void> {
  let pid: number;
  try {
    pid = Number((await Deno.readTextFile(pidfile)).trim());
  } catch {
    return;
  }
  if (!Number.isInteger(pid) || pid <= 1) return;
  const alive = () => {
    try {
      Deno.kill(pid, "SIGCONT"); // harmless probe: throws once the process is gone
      return true;
    } catch {
      return false;
    }
  };
  try {
    Deno.kill(pid, "SIGTERM");
  } catch {
    return;
  }
  for (let i = 0; i < 50 && alive(); i++) await new Promise((r) => setTimeout(r, 200));
  if (alive()) Deno.kill(pid, "SIGKILL");
}

Deno.test({
  name: "appliance: boots with kattach as PID 1, survives signals, reaps orphans, serves SSH",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const build = await run([`${REPO_ROOT}/buildroot/appliance/build`], 600_000);
    assert(build.code === 0, `the image build failed:\n${build.out}`);

    const dir = await Deno.makeTempDir({ prefix: "kaos-appliance-test-" });
    const disk = `${dir}/data.img`;
    const pidfile = `${dir}/qemu.pid`;
    const serial = `${dir}/serial.log`;
    const port = freePort();
    try {
      try {
        const boot = await run([
          `${REPO_ROOT}/scripts/run-appliance`,
          ...[
            "--no-build",
            "--daemon",
            "--port",
            String(port),
            "--disk",
            disk,
            "--disk-size",
            "256M",
          ],
          ...["--pidfile", pidfile, "--serial-log", serial, "--memory", "1024"],
          ...["--append", "kaos.selftest=signals"],
        ], 60_000);
        assert(boot.code === 0, `run-appliance failed:\n${boot.out}`);

        let log = await waitForLog(serial, /kattach: ready \(appliance/, BOOT_TIMEOUT_MS);
        assert(/kattach: PID 1: deno \d/.test(log), `kattach is not PID 1:\n${log}`);
        assert(/data disk \/dev\/vd\w+ \(KAOSDATA\) mounted on \/var\/lib\/kaos/.test(log), log);
        assert(/kattach: eth0 10\.0\.2\.\d+\/24/.test(log), `no network:\n${log}`);

        log = await waitForLog(serial, /selftest: done/, 60_000);
        for (const sig of ["SIGTERM", "SIGHUP", "SIGUSR1", "SIGINT"]) {
          assert(log.includes(`received ${sig}; PID 1 ignores it`), `${sig} not seen:\n${log}`);
        }
        assert(/reaped orphan \d+/.test(log), `no orphan reaped:\n${log}`);
        assert(
          /selftest: done; PID 1 alive, [1-9]\d* orphan\(s\) reaped, 0 zombie\(s\)/.test(log),
          log,
        );

        if (/sshd: started/.test(log)) {
          const banner = await sshBanner(port, 120_000);
          assert(banner?.startsWith("SSH-2.0-"), `no SSH banner on 127.0.0.1:${port}: ${banner}`);
        } else {
          console.log("note: this kattach starts no sshd; the SSH check was skipped");
        }
        assert(!/Kernel panic/.test(await readLog(serial)));
      } finally {
        await stopQemu(pidfile);
      }

      // kattach's config store went onto the data disk, not into RAM: after the power cut
      // (QEMU killed), e2fsck replays the journal and the database is there.
      const fsck = await run(["e2fsck", "-f", "-y", disk], 60_000);
      assert(fsck.code <= 1, `e2fsck found damage (${fsck.code}):\n${fsck.out}`);
      const ls = await run(["debugfs", "-R", "ls -l /", disk], 30_000);
      assert(/kaos\.db/.test(ls.out), `no kaos.db on the data disk:\n${ls.out}`);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});
