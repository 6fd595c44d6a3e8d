/**
 * Guests for real: a hosted kattach deploys instances of the fixture `web` module as real QEMU
 * guests (TCG), and `aq` drives their whole life: readiness, the page through each instance's
 * host forward, pause/resume, ACPI stop on the default microvm machine, the q35 override, a QEMU killed with SIGKILL restarted per policy, kattach
 * restarted and re-attached to the same QEMU processes, QMP pass-through, console and stats.
 * Every QEMU is killed by its pidfile at the end, whatever happens.
 */
import assert from "node:assert/strict";
import type { GuestStats, Instance, SerialLog } from "../ipc/mod.ts";
import { buildFixtures, TestKattach } from "./_harness.ts";

const TITLE = "KaOS guests <test> & co";

/** Kills every QEMU whose pidfile is under the state directory. */
async function killAllQemu(stateDir: string): Promise<void> {
  const dir = `${stateDir}/instances`;
  let entries: Deno.DirEntry[] = [];
  try {
    entries = [...Deno.readDirSync(dir)];
  } catch { /* no instances */ }
  for (const e of entries) {
    const pid = Number(await Deno.readTextFile(`${dir}/${e.name}/qemu.pid`).catch(() => ""));
    if (pid > 1) {
      try {
        Deno.kill(pid, "SIGKILL");
      } catch { /* gone */ }
    }
  }
}

/** QEMU's argv of a running process. */
function cmdline(pid: number): string[] {
  return Deno.readTextFileSync(`/proc/${pid}/cmdline`).split("\0");
}

function alive(pid: number): boolean {
  try {
    return !Deno.readTextFileSync(`/proc/${pid}/stat`).includes(") Z ");
  } catch {
    return false;
  }
}

/** QEMU processes whose command line names this state directory. */
function qemusOf(stateDir: string): number[] {
  const pids: number[] = [];
  for (const e of Deno.readDirSync("/proc")) {
    if (!/^\d+$/.test(e.name)) continue;
    try {
      const cmd = Deno.readTextFileSync(`/proc/${e.name}/cmdline`);
      const argv0 = cmd.slice(0, cmd.indexOf("\0"));
      if (argv0.endsWith("qemu-system-x86_64") && cmd.includes(`${stateDir}/instances/`)) {
        pids.push(Number(e.name));
      }
    } catch { /* ended */ }
  }
  return pids.sort();
}

async function until<T>(
  what: string,
  fn: () => Promise<T | undefined>,
  timeoutMs = 120_000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

async function page(i: Instance): Promise<string> {
  const fwd = i.forwards?.find((f) => f.guestPort === 80);
  assert.ok(fwd, `${i.name} has a forward to port 80: ${JSON.stringify(i.forwards)}`);
  const res = await fetch(`http://127.0.0.1:${fwd.hostPort}/`);
  assert.equal(res.status, 200);
  return await res.text();
}

async function fails(k: TestKattach, args: string[], message: RegExp, code = 1): Promise<void> {
  const r = await k.aq(...args);
  assert.equal(r.code, code, `aq ${args.join(" ")}: ${r.stdout}${r.stderr}`);
  assert.match(r.stderr, message, args.join(" "));
}

Deno.test({
  name: "guests: deploy, readiness, forwards, pause/resume, stop, restart policy, re-attach, qmp",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    await buildFixtures();
    const k = await TestKattach.start();
    try {
      await k.importFixtures("vkaos", "web");
      await k.json("config-group", "add", "web", "site", `title=${TITLE}`, "greeting=welcome");
      await k.json("vmimage", "create", "web", "--modules", "web", "--config-groups", "site");

      // deploy starts both and (with --wait) returns once they are ready.
      const deployed = await k.json<Instance[]>("deploy", "web", "--count", "2", "--wait");
      assert.deepEqual(deployed.map((i) => [i.name, i.state]), [
        ["web-1", "running"],
        ["web-2", "running"],
      ]);
      const pids = deployed.map((i) => i.pid!);
      assert.ok(pids.every((p) => p > 1 && alive(p)));
      assert.deepEqual(qemusOf(k.stateDir), [...pids].sort());
      for (const i of deployed) {
        const html = await page(i);
        assert.match(html, /<h1>KaOS guests &lt;test&gt; &amp; co<\/h1>/);
        assert.match(html, new RegExp(`Welcome to instance ${i.name}`));
        assert.deepEqual(i.health?.map((h) => [h.module, h.status]), [
          ["vkaos", "ready"],
          ["web", "ready"],
        ]);
        const dir = `${k.stateDir}/instances/${i.name}`;
        for (const f of ["qmp.sock", "console.sock", "serial.log", "qemu.pid"]) {
          await Deno.stat(`${dir}/${f}`);
        }
        // The overlay is keyed by the module image's digest.
        const overlays = [...Deno.readDirSync(dir)].map((e) => e.name).filter((n) =>
          n.endsWith(".qcow2")
        );
        assert.deepEqual(overlays.map((n) => n.replace(/[0-9a-f]{16}/, "SHA")), ["web-SHA.qcow2"]);
      }
      // The default machine: microvm with virtio-mmio devices, qboot, the host TSC rate.
      for (const pid of pids) {
        const argv = cmdline(pid);
        assert.equal(argv[argv.indexOf("-M") + 1], "microvm");
        assert.ok(argv.some((a) => a.startsWith("virtio-blk-device,")), argv.join(" "));
        if (await Deno.stat("/usr/share/qemu/qboot.rom").then(() => true, () => false)) {
          assert.equal(argv[argv.indexOf("-bios") + 1], "/usr/share/qemu/qboot.rom");
        }
        // tsc=reliable: microvm's only clocksource watchdog is jiffies (vmimage/qemu_argv.ts).
        assert.match(argv[argv.indexOf("-append") + 1], /tsc_early_khz=\d+ tsc=reliable/);
        // The fixture's bzImage carries a PVH ELF: microvm boots it, inflated once on the host.
        assert.match(argv[argv.indexOf("-kernel") + 1], /\/cache\/vkaos\/[0-9a-f]+\/kernel\.pvh$/);
      }
      assert.match(k.log, /started web-1 \(pid \d+; microvm: no module needs PCI; (TCG|KVM);/);
      // Each overlay is a qcow2 written by kattach (no qemu-img) over the web module's image,
      // and qemu-img finds it clean.
      for (const name of ["web-1", "web-2"]) {
        const dir = `${k.stateDir}/instances/${name}`;
        const file = [...Deno.readDirSync(dir)].find((e) => e.name.endsWith(".qcow2"))!.name;
        const info = await new Deno.Command("qemu-img", {
          args: ["info", "-U", "--output=json", `${dir}/${file}`],
          stdout: "piped",
        }).output();
        const shape = JSON.parse(new TextDecoder().decode(info.stdout));
        assert.equal(shape.format, "qcow2");
        assert.match(shape["backing-filename"], /\/modules\/web\/web\.aqi$/);
        assert.equal(shape["backing-filename-format"], "raw");
      }
      const shown = await k.aq("instance", "show", "web-1");
      assert.match(shown.stdout, /Forwards:\s+127\.0\.0\.1:\d+ -> 80 \(web\)/);
      // Its NIC is user-mode: no port can be published to it, so no such line; the JSON keeps
      // its (empty) list.
      assert.doesNotMatch(shown.stdout, /Published ports/);
      assert.deepEqual((await k.json<Instance>("instance", "show", "web-1")).published, []);

      // QMP pass-through and its errors.
      const status = await k.json<{ return: { status: string } }>("qmp", "web-1", "query-status");
      assert.equal(status.return.status, "running");
      const plain = await k.aq("qmp", "web-1", "query-name");
      assert.equal(plain.code, 0);
      assert.deepEqual(JSON.parse(plain.stdout), { name: "web-1" });
      await fails(k, ["qmp", "web-1", "query-status", "{bad json"], /not valid JSON/, 2);
      await fails(k, ["qmp", "web-1", "query-status", "[1]"], /must be a JSON object/, 2);
      await fails(k, ["qmp", "web-1", "query-no-such-thing"], /CommandNotFound/);
      await fails(k, ["qmp", "web-1", "no-such-command"], /only read-only and guest-local/);
      await fails(k, ["qmp", "web-9", "query-status"], /Instance web-9 does not exist/);
      await fails(k, ["instance", "start", "web-9"], /Instance web-9 does not exist/);
      await fails(k, ["instance", "start", "web-1"], /Cannot start web-1: it is running/);
      await fails(k, ["instance", "del", "web-1"], /Cannot delete web-1: it is running/);
      await fails(k, ["instance", "set", "web-1", "--restart-policy", "sometimes"], /always/, 2);
      await fails(k, ["instance", "set", "web-1", "--autostart", "maybe"], /yes or no/, 2);

      // Pause and resume. Pausing a paused guest and resuming a running one are refused with
      // code conflict, as a start of a running one is, and change nothing.
      assert.equal((await k.json<Instance>("instance", "pause", "web-1")).state, "paused");
      const paused = await k.json<{ return: { status: string } }>("qmp", "web-1", "query-status");
      assert.equal(paused.return.status, "paused");
      await fails(k, ["instance", "pause", "web-1"], /Cannot pause web-1: it is paused already\n/);
      const twice = await k.aq("instance", "pause", "web-1", "--json");
      assert.equal(JSON.parse(twice.stderr).error.code, "conflict", twice.stderr);
      assert.equal((await k.json<Instance>("instance", "show", "web-1")).state, "paused");
      assert.equal((await k.json<Instance>("instance", "resume", "web-1")).state, "running");
      await fails(
        k,
        ["instance", "resume", "web-1"],
        /Cannot resume web-1: it is running, not paused/,
      );
      const running = await k.json<{ return: { status: string } }>("qmp", "web-1", "query-status");
      assert.equal(running.return.status, "running");

      // Stats from QMP and /proc.
      const stats = await k.json<GuestStats>("instance", "stats", "web-1");
      assert.equal(stats.pid, pids[0]);
      assert.ok(stats.cpuSeconds! > 0 && stats.rssBytes! > 0);
      assert.equal(stats.memoryBytes, 256 * 1024 * 1024);
      assert.ok(stats.blocks.some((b) => b.rdBytes > 0), JSON.stringify(stats.blocks));

      // The serial console's last lines: the boot and the services, as the guest printed them.
      const log = await k.json<SerialLog>("instance", "log", "web-1", "--lines", "500");
      assert.ok(log.lines.includes("KAOS-GUEST: ready web-1"), log.lines.join("\n"));
      // vKaOS names the module once: the service does not print its own name too.
      assert.ok(log.lines.includes("web: ready on port 80"), log.lines.join("\n"));
      assert.ok(!log.lines.some((l) => l.includes("web: web:")), log.lines.join("\n"));
      assert.equal(log.file, `${k.stateDir}/instances/web-1/serial.log`);
      const last = await k.aq("instance", "log", "web-1", "--lines", "2");
      assert.equal(last.code, 0, last.stderr);
      const two = last.stdout.split("\n").slice(0, -1);
      const again = await k.json<SerialLog>("instance", "log", "web-1", "--lines", "500");
      assert.equal(two.length, 2, last.stdout);
      assert.ok(two.every((l) => again.lines.includes(l)), last.stdout); // the guest may go on
      await fails(k, ["instance", "log", "web-1", "--lines", "0"], /--lines runs from 1/, 2);
      await fails(k, ["instance", "log", "web-9"], /web-9 does not exist/);

      // The console socket: attaching (no terminal: stdin ends) prints the banner and detaches.
      const con = await k.aq("instance", "console", "web-1");
      assert.equal(con.code, 0, con.stderr);
      assert.match(con.stderr, /Connected to the console of web-1\. Detach with Ctrl-\]/);

      // SIGKILL to web-2's QEMU: on-failure restarts it (new pid), ready again.
      Deno.kill(pids[1], "SIGKILL");
      const back = await until("web-2 restarted", async () => {
        const i = await k.json<Instance>("instance", "show", "web-2");
        return i.state === "running" && i.pid !== pids[1] && i.pid ? i : undefined;
      });
      assert.equal(back.restarts, 1);
      assert.match(await page(back), /Welcome to instance web-2/);
      pids[1] = back.pid!;

      // ACPI stop on microvm: the power button reaches the guest's acpid (GED), which powers off.
      const stopped = await k.json<Instance>("instance", "stop", "web-1");
      assert.equal(stopped.state, "stopped");
      assert.equal(stopped.pid, null);
      assert.ok(!alive(pids[0]));
      const serial = await Deno.readTextFile(`${k.stateDir}/instances/web-1/serial.log`);
      assert.match(serial, /KAOS-GUEST: powering off/);
      assert.doesNotMatch(k.log, /web-1: no power-off after/);
      // The q35 override: the next start runs virtio-pci on q35; show and set say so.
      const before = await k.json<Instance>("instance", "show", "web-1");
      assert.equal(before.machine, "microvm: no module needs PCI");
      const set = await k.json<Instance>("instance", "set", "web-1", "--machine", "q35");
      assert.equal(set.machine, "q35: set on the instance");
      // The vKaOS cache removed behind kattach's back: the start makes it again (what starts
      // remember of it is looked at, not trusted).
      await Deno.remove(`${k.stateDir}/cache/vkaos`, { recursive: true });
      const started = await k.json<Instance>("instance", "start", "web-1", "--wait");
      assert.equal(started.state, "running");
      const q35 = cmdline(started.pid!);
      assert.equal(q35[q35.indexOf("-M") + 1], "q35");
      assert.ok(q35.some((a) => a.startsWith("virtio-blk-pci,")), q35.join(" "));
      assert.ok(!q35.includes("-bios"));
      assert.match(q35[q35.indexOf("-kernel") + 1], /\/kernel$/);
      assert.ok((await Deno.stat(q35[q35.indexOf("-kernel") + 1])).isFile);
      assert.match(k.log, /started web-1 \(pid \d+; q35: set on the instance;/);
      const onQ35 = await k.json<Instance>("instance", "show", "web-1");
      assert.equal(onQ35.machine, "q35: set on the instance");
      assert.match(await page(started), /Welcome to instance web-1/);
      pids[0] = started.pid!;

      // kattach restarts: the guests keep running and are re-attached, not duplicated.
      await k.json("instance", "set", "web-2", "--restart-policy", "never", "--autostart", "yes");
      await k.stop("SIGTERM");
      assert.ok(pids.every(alive), "QEMU outlives kattach");
      await k.restart();
      assert.match(k.log, /re-attached web-1 \(pid \d+\)/);
      const listed = await k.json<Instance[]>("instance", "list");
      assert.deepEqual(listed.map((i) => [i.name, i.state, i.pid]), [
        ["web-1", "running", pids[0]],
        ["web-2", "running", pids[1]],
      ]);
      assert.deepEqual(qemusOf(k.stateDir), [...pids].sort());
      const after = await k.json<{ return: { status: string } }>("qmp", "web-2", "query-status");
      assert.equal(after.return.status, "running");
      assert.equal(listed[1].restartPolicy, "never");
      assert.equal(listed[1].autostart, true);

      // restart-policy never: a killed QEMU stays down (failed).
      Deno.kill(pids[1], "SIGKILL");
      const down = await until("web-2 failed", async () => {
        const i = await k.json<Instance>("instance", "show", "web-2");
        return i.state === "failed" ? i : undefined;
      });
      assert.match(down.lastExit ?? "", /QEMU ended unexpectedly/);
      assert.equal(down.pid, null);

      // kill and delete: the runtime directory goes with the instance.
      assert.equal((await k.json<Instance>("instance", "kill", "web-1")).state, "stopped");
      await fails(k, ["instance", "pause", "web-1"], /Cannot pause web-1: it is stopped/);
      await k.json("instance", "del", "web-1");
      await assert.rejects(Deno.stat(`${k.stateDir}/instances/web-1`));
      assert.deepEqual(qemusOf(k.stateDir), []);
    } finally {
      await killAllQemu(k.stateDir);
      await k.dispose();
    }
  },
});
