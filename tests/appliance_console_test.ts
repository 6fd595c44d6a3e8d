/**
 * Image test of the console and the log, on one boot of the appliance with the menus on the
 * serial port (`console=ttyS0` last, as the image's serial boot entry does), driven through a
 * unix socket to QEMU's serial port: the aqcli login with the forced change of the default
 * password, a VLAN created through the menus and read back over SSH, no kattach log line on the
 * menu's terminal, logout and Ctrl+C back to a fresh login prompt, `system log` (lines and
 * --follow) over SSH, and `storage list`/`storage init` refusing the data disk.
 */
import {
  deepStrictEqual as assertEquals,
  match as assertMatch,
  ok as assert,
} from "node:assert/strict";
import { buildAppliance, startAppliance, stopQemu, waitForLog } from "./_appliance.ts";
import { sshPasswordOpts, sshPw } from "./_ssh.ts";
import { freePort, run, waitFor } from "./_util.ts";

const BOOT_TIMEOUT_MS = 600_000;
const STEP_MS = 300_000; // generous: TCG on a busy 2-core machine (a console start took minutes at load 20)
const DEFAULT_PASSWORD = "kaos-0.1.0-dev";
const NEW_PASSWORD = "serial-S3cret-pw";

// deno-lint-ignore no-control-regex
const ANSI = /\x1b\[[0-9;?]*[A-Za-z]|\x1b[()][A-Z0-9]|\x1b[=>]/g;

/** The appliance's serial port through QEMU's unix socket: read everything, type keys. */
class SerialConsole {
  raw = "";
  #conn: Deno.UnixConn;
  #reading: Promise<void>;

  private constructor(conn: Deno.UnixConn) {
    this.#conn = conn;
    this.#reading = (async () => {
      const dec = new TextDecoder();
      const buf = new Uint8Array(16384);
      while (true) {
        const n = await conn.read(buf).catch(() => null);
        if (n === null) return;
        this.raw += dec.decode(buf.subarray(0, n), { stream: true });
      }
    })();
  }

  static async connect(path: string): Promise<SerialConsole> {
    let conn: Deno.UnixConn | undefined;
    await waitFor(
      async () => {
        conn = await Deno.connect({ transport: "unix", path }).catch(() => undefined);
        return conn !== undefined;
      },
      () => `QEMU's serial socket ${path}`,
      { timeoutMs: 30_000 },
    );
    return new SerialConsole(conn!);
  }

  /** The output without escape sequences, lines ending in \n. */
  get text(): string {
    return this.raw.replace(ANSI, "").replaceAll("\r\n", "\n").replaceAll("\r", "");
  }

  async waitFor(re: RegExp | string, from = 0, timeoutMs = STEP_MS): Promise<void> {
    const ok = () => {
      const t = this.text.slice(from);
      return typeof re === "string" ? t.includes(re) : re.test(t);
    };
    await waitFor(ok, () => `${re} on the serial console; got:\n${this.text.slice(-2500)}`, {
      timeoutMs,
      intervalMs: 100,
    });
  }

  /**
   * Types keys, waits for the answer to start (up to 10 s: the appliance runs under TCG on a
   * busy machine), then until the output has been quiet for 400 ms.
   */
  async keys(text: string): Promise<void> {
    const before = this.raw.length;
    await this.#conn.write(new TextEncoder().encode(text));
    for (let i = 0; i < 100 && this.raw.length === before; i++) {
      await new Promise((r) => setTimeout(r, 100));
    }
    await this.settle();
  }

  /** Waits until the output has been quiet for a second (at most 30 s). */
  async settle(): Promise<void> {
    let last = -1;
    for (let i = 0; i < 30 && this.raw.length !== last; i++) {
      last = this.raw.length;
      await new Promise((r) => setTimeout(r, 1000));
    }
  }

  async line(text: string): Promise<void> {
    await this.keys(text + "\r");
  }

  /** The highlighted entry of the last select drawn. */
  active(): string {
    const t = this.text;
    const at = t.lastIndexOf("❯");
    if (at === -1) return "";
    const end = t.indexOf("\n", at);
    return t.slice(at + 1, end === -1 ? undefined : end).trim();
  }

  /** Moves a select's cursor down (it wraps around) to `label` and presses Enter. */
  async choose(label: string, from: number): Promise<void> {
    await this.waitFor("❯", from);
    await this.settle(); // the page is drawn whole before its cursor is read
    for (let i = 0; i < 40; i++) {
      if (this.active().startsWith(label)) return await this.keys("\r");
      await this.keys("\x1b[B");
    }
    throw new Error(`no entry ${label}; last: ${this.active()}\n${this.text.slice(-2000)}`);
  }

  async close(): Promise<void> {
    try {
      this.#conn.close();
    } catch { /* closed */ }
    await this.#reading;
  }
}

Deno.test({
  name: "appliance console on the serial port: login, VLAN via menus, logout; system log",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const build = await buildAppliance();
    assert(build.code === 0, `the image build failed:\n${build.stdout}${build.stderr}`);
    const dir = await Deno.makeTempDir({ prefix: "kaos-console-test-" });
    const pidfile = `${dir}/qemu.pid`;
    const serialLog = `${dir}/serial.log`;
    const port = freePort();
    let serial: SerialConsole | undefined;
    let follower: Deno.ChildProcess | undefined;
    let passed = false;
    try {
      const boot = await startAppliance({
        port,
        disk: `${dir}/data.img`,
        diskSize: "256M",
        pidfile,
        serial: serialLog,
        memoryMiB: 2048, // kattach, sshd and two consoles are four Deno processes
        append: "console=ttyS0",
        serialSocket: `${dir}/serial.sock`,
      });
      assert(boot.code === 0, `run-appliance failed:\n${boot.stdout}${boot.stderr}`);
      serial = await SerialConsole.connect(`${dir}/serial.sock`);

      // kattach's boot lines come first, then the menus own the port: the login prompt.
      await serial.waitFor("Password for aqcli", 0, BOOT_TIMEOUT_MS);
      const boot0 = serial.text.slice(0, serial.text.indexOf("Password for aqcli"));
      assertMatch(boot0, /kattach: PID 1: deno .*\n[\s\S]*kattach: console menus on tty1, ttyS0/);
      await waitForLog(serialLog, /Password for aqcli/, { timeoutMs: 5_000 });

      // Ctrl+C at the login prompt: a fresh login prompt.
      let mark = serial.text.length;
      await serial.keys("\x03");
      await serial.waitFor("Password for aqcli", mark);

      // Log in with the release default; its change is forced.
      mark = serial.text.length;
      await serial.line(DEFAULT_PASSWORD);
      await serial.waitFor("must be changed", mark);
      await serial.waitFor("New password", mark);
      await serial.line(NEW_PASSWORD);
      await serial.waitFor("Retype new password", mark);
      await serial.line(NEW_PASSWORD);
      await serial.waitFor("Password changed.", mark);
      assert(!serial.text.includes(NEW_PASSWORD), "a password was echoed on the serial console");

      // Networking → vlan add, as an operator on the serial console would.
      const menuFrom = serial.text.length;
      await serial.waitFor("Log out", menuFrom - 200);
      await serial.choose("Networking", menuFrom);
      await serial.choose("vlan ›", menuFrom);
      await serial.choose("vlan add", menuFrom);
      await serial.waitFor("ID", menuFrom);
      await serial.line("42");
      await serial.line("serial");
      await serial.line("10.42.0.0/24");
      await serial.waitFor("--gateway", menuFrom);
      // Every optional flag (--gateway, --pool, and whatever vlan add grows) is left out.
      for (let i = 0; i < 12 && !serial.text.slice(menuFrom).includes("Added VLAN 42."); i++) {
        await serial.keys("\r");
      }
      await serial.waitFor("Added VLAN 42.", menuFrom);
      assertMatch(serial.text.slice(menuFrom), /= vlan add 42 serial 10\.42\.0\.0\/24\n/);

      // Read it back over SSH with the new password.
      const ssh = (args: string[]) => sshPw({ port }, NEW_PASSWORD, args);
      const vlans = await ssh(["vlan", "list", "--json"]);
      assertEquals(vlans.code, 0, vlans.stderr);
      const list = JSON.parse(vlans.stdout) as { id: number; name: string; cidr: string }[];
      assertEquals(list.map((v) => [v.id, v.name, v.cidr]), [[42, "serial", "10.42.0.0/24"]]);

      // Storage on the appliance: the data disk is never a candidate, and without storage KaOS
      // says where instances go.
      const storage = await ssh(["storage", "list", "--json"]);
      assertEquals(storage.code, 0, storage.stderr);
      const disks = JSON.parse(storage.stdout) as {
        disks: { device: string; inUseBy: string; candidate: boolean; label: string }[];
        notice: string | null;
      };
      const dataDisk = disks.disks.find((d) => /KAOSDATA/.test(d.label));
      assert(dataDisk, `no KAOSDATA disk in storage list: ${storage.stdout}`);
      assertMatch(dataDisk.inUseBy, /KaOS boot stick/);
      assertEquals(dataDisk.candidate, false);
      assertMatch(disks.notice ?? "", /No guest storage: instances live on the data partition/);
      const refused = await ssh(["storage", "init", dataDisk.device, "--yes"]);
      assertEquals(refused.code, 1, refused.stderr);
      assertMatch(refused.stderr, /in use \(KaOS boot stick/);

      // The log: kattach logged the VLAN and the SSH login, in its file, not on the menu.
      const log = await ssh(["system", "log", "--lines", "500", "--json"]);
      assertEquals(log.code, 0, log.stderr);
      const lines = (JSON.parse(log.stdout) as { lines: string[]; file: string }).lines;
      const text = lines.join("\n");
      assertMatch(text, /console menus on tty1, ttyS0; log in \/var\/lib\/kaos\/log\/kattach\.log/);
      assertMatch(text, /vlan: added 42 serial 10\.42\.0\.0\/24/);
      assertMatch(text, /sshd: auth ok user="aqcli"/);
      assertMatch(text, /PID 1: deno/); // lines from before the data disk was mounted
      const afterMenu = serial.text.slice(menuFrom);
      assert(!/kattach: /.test(afterMenu), `kattach's log reached the menu:\n${afterMenu}`);

      // --follow streams new lines over SSH until the client leaves.
      follower = new Deno.Command("sshpass", {
        args: ["-e", "ssh", ...sshPasswordOpts(), "-p", String(port), "aqcli@127.0.0.1"]
          .concat(["system", "log", "--lines", "0", "--follow"]),
        env: { SSHPASS: NEW_PASSWORD },
        stdin: "null",
        stdout: "piped",
        stderr: "null",
      }).spawn();
      let streamed = "";
      const reading = (async () => {
        for await (const t of follower.stdout.pipeThrough(new TextDecoderStream())) streamed += t;
      })();
      // A change logged after the follower connected shows up in its stream (renamed until then).
      let n = 0;
      await waitFor(
        async () => {
          assertEquals((await ssh(["vlan", "set", "42", "--name", `follow${++n}`])).code, 0);
          return /vlan: changed 42/.test(streamed);
        },
        () => `"vlan: changed 42" from system log --follow; got: ${streamed}`,
        {
          timeoutMs: STEP_MS,
          intervalMs: 2000,
        },
      );
      follower.kill("SIGTERM");
      await follower.status;
      await reading;
      follower = undefined;
      const after = await ssh(["system", "status", "--json"]);
      assertEquals(after.code, 0, `kattach after the follower left: ${after.stderr}`);

      // Log out: the console comes back to a fresh login prompt.
      mark = serial.text.length;
      for (let i = 0; i < 4 && !serial.text.slice(mark).includes("Log out"); i++) {
        await serial.keys("\x03"); // Ctrl+C goes back one page, up to the top
      }
      await serial.choose("Log out", mark);
      await serial.waitFor("Bye.", mark);
      await serial.waitFor("Password for aqcli", mark);
      mark = serial.text.length;
      await serial.line(NEW_PASSWORD);
      await serial.waitFor("Log out", mark);
      passed = true;
    } finally {
      try {
        follower?.kill("SIGKILL");
      } catch { /* gone */ }
      await serial?.close();
      await stopQemu(pidfile);
      if (!passed) {
        // kattach's own log, from the data disk, to tell why.
        const log = await run(["debugfs", "-R", "cat /log/kattach.log", `${dir}/data.img`]);
        console.error(`kattach.log on the data disk:\n${log.stdout.slice(-6000)}`);
      }
      await Deno.remove(dir, { recursive: true });
    }
  },
});
