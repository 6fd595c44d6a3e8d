/**
 * Image test, end to end from blank, once under SeaBIOS and once under OVMF: the built image
 * (scripts/build-image) written to a fresh USB stick file and booted by scripts/run-appliance
 * (xHCI + usb-storage, a blank 2 GiB virtio disk beside it), as a user would drive it:
 *
 * - the forced change of the default password: under SeaBIOS on the serial console (GRUB's entry
 *   "with the serial console" picked through the serial port within the menu's timeout, the aqcli
 *   login there, then Networking → vlan add through the menus, read back over SSH); under OVMF
 *   over SSH on the forwarded port (real pty in tmux);
 * - over SSH: `storage init` of the blank disk (it becomes storage `disk0`; the boot stick is
 *   refused), the built-in queue `local` (read-only, `hello` installed from it with no network),
 *   vKaOS and `web` from a loopback AppQueue the test serves on the host (reached as 10.0.2.2), a
 *   configuration group, a VM image, instances deployed whose pages kattach fetches (HTTP
 *   readiness through each instance's forward), autostart on; the instances live on `disk0`
 *   (`instance show`, `storage list --json`, and their files read from the disk file with
 *   debugfs after the reboot);
 * - `system reboot` (GRUB's default entry this time); after it the new password logs in, the host
 *   key has the same fingerprint (a strict known_hosts check, and the fingerprint seen afresh), the
 *   configuration is there and the instances are back (autostart) with their pages answering.
 *
 * The split: SeaBIOS deploys two instances, OVMF one. Past the boot loader both firmwares run the
 * same kernel, kattach and guests, so a second nested guest under OVMF would test nothing the
 * SeaBIOS run does not, and costs the most (each nested TCG guest: minutes under load, at its
 * start and again at its autostart). Both runs boot from the stick, reach the CLI, change the
 * password (each its own way), init storage, deploy, reboot and find everything back.
 *
 * The queue's web and vkaos are the fixtures with the readiness timeouts raised to 900 s (nested
 * TCG) and web's readiness an HTTP GET of its page, as in tests/appliance_guests_test.ts. The power
 * cut is tests/appliance_power_test.ts. Times are printed (no timed assertions).
 */
import {
  deepStrictEqual as assertEquals,
  match as assertMatch,
  ok as assert,
} from "node:assert/strict";
import { buildQueue, generateKeyFile } from "../appqueue/mod.ts";
import { ACTIVATE_PROMPT } from "../cli/console.ts";
import { DEFAULT_PASSWORD } from "../kattach/auth.ts";
import {
  ApplianceSsh,
  buildAppliance,
  readLog,
  startAppliance,
  stopQemu,
  waitForLog,
} from "./_appliance.ts";
import { AppQueueServer } from "./_appqueue_server.ts";
import { buildFixtures, moduleCopy } from "./_harness.ts";
import { SERIAL_STEP_MS, SerialConsole } from "./_serial.ts";
import { sshPasswordOpts } from "./_ssh.ts";
import { freePort, run, waitFor } from "./_util.ts";

const NEW_PASSWORD = "Usb-stick-e2e-1";
/** Boot of the image under TCG until its SSH CLI answers (loaded CI: minutes). */
const BOOT_TIMEOUT_MS = 600_000;
/** One SSH exec command against the emulated appliance. */
const EXEC_TIMEOUT_MS = 180_000;
/** Nested TCG guests until ready. */
const DEPLOY_TIMEOUT_MS = 1_500_000;
const READINESS_TIMEOUT_S = 900;
const SSH_OPTS = sshPasswordOpts({ connectTimeoutS: 60, serverAliveIntervalS: 30 });
const VERSION = DEFAULT_PASSWORD.replace(/^kaos-/, "");

/** The fingerprints of the host keys in a known_hosts file, sorted ("SHA256:… (ED25519)"). */
async function fingerprints(knownHosts: string): Promise<string[]> {
  const fp = await run(["ssh-keygen", "-l", "-f", knownHosts]);
  assertEquals(fp.code, 0, fp.stderr);
  // "256 SHA256:… [127.0.0.1]:40123 (ED25519)" -> "SHA256:… (ED25519)"
  const keys = fp.stdout.trim().split("\n").map((l) =>
    l.replace(/^\d+ (\S+) .* (\(\w+\))$/, "$1 $2")
  );
  assert(keys.length > 0 && keys.every((k) => k.startsWith("SHA256:")), fp.stdout);
  return keys.sort();
}

interface InstanceInfo {
  name: string;
  state: string;
  storage?: string | null;
  forwards?: { hostPort: number; guestPort: number }[];
  health?: { module: string; status: string; detail: string }[];
}

/** What one run of the flow does beside the common steps. */
interface Flow {
  /** Boot under OVMF (UEFI) instead of SeaBIOS. */
  uefi: boolean;
  /** Change the password and add a VLAN on the serial console (else: password over SSH). */
  serialConsole: boolean;
  /** How many `web` instances to deploy. */
  instances: number;
}

async function endToEnd(flow: Flow): Promise<void> {
  const t0 = performance.now();
  const times: [string, number][] = [];
  let mark = t0;
  const lap = (what: string) => {
    const now = performance.now();
    times.push([what, (now - mark) / 1000]);
    mark = now;
  };
  const firmware = flow.uefi ? "OVMF" : "SeaBIOS";
  const names = Array.from({ length: flow.instances }, (_, i) => `web-${i + 1}`);

  const build = await buildAppliance();
  assert(build.code === 0, `the image build failed:\n${build.stdout}${build.stderr}`);
  await buildFixtures();
  lap("image and fixtures build (cached)");

  const dir = await Deno.makeTempDir({ prefix: "kaos-appliance-usb-" });
  const pidfile = `${dir}/qemu.pid`;
  const serialLog = `${dir}/serial.log`;
  const disk = `${dir}/disk.img`;
  const port = freePort();
  const key = await generateKeyFile();
  const modules = [
    await moduleCopy("vkaos", `${dir}/modules`, (a) => {
      a.readinessTimeoutSeconds = READINESS_TIMEOUT_S;
    }),
    await moduleCopy("web", `${dir}/modules`, (a) => {
      a.readinessTimeoutSeconds = READINESS_TIMEOUT_S;
      a.readiness = { type: "http", port: 80, path: "/" };
    }),
  ];
  await buildQueue(modules, { out: `${dir}/community`, key, serial: 1 });
  const server = AppQueueServer.start();
  server.mount("community", `${dir}/community`);
  const queuePort = new URL(server.url("community")).port;
  const cli = new ApplianceSsh({
    port,
    newPassword: NEW_PASSWORD,
    sshOpts: SSH_OPTS,
    execTimeoutMs: EXEC_TIMEOUT_MS,
    tmuxName: `kaos_usb_${flow.uefi ? "uefi" : "bios"}`,
  });
  let serial: SerialConsole | undefined;
  const json = async <T>(args: string[]) => JSON.parse(await cli.ok([...args, "--json"])) as T;
  const allReady = async (what: string) => {
    let last = "";
    await waitFor(
      async () => {
        const r = await cli.run(["instance", "list", "--json"]);
        last = r.stdout + r.stderr;
        if (r.code !== 0) return false;
        const list = JSON.parse(r.stdout) as InstanceInfo[];
        const ready = (i: InstanceInfo) =>
          i.state === "running" && i.health?.find((h) => h.module === "web")?.status === "ready";
        return list.length === names.length && list.every(ready);
      },
      () => `${names.join(" and ")} running with their pages answering (${what}):\n${last}`,
      { timeoutMs: DEPLOY_TIMEOUT_MS, intervalMs: 10_000 },
    );
    const list = JSON.parse(last) as InstanceInfo[];
    assertEquals(list.map((i) => i.name).sort(), names);
    for (const inst of list) {
      const web = inst.health!.find((h) => h.module === "web")!;
      const fwd = inst.forwards?.find((f) => f.guestPort === 80);
      assert(fwd, `${inst.name}: no forward to port 80:\n${last}`);
      // kattach inside the appliance fetched the page through the instance's forward.
      assertMatch(web.detail, new RegExp(`GET http://127\\.0\\.0\\.1:${fwd.hostPort}/: 200`));
    }
  };

  try {
    const boot = await startAppliance({
      port,
      stick: `${dir}/stick.img`,
      disk,
      diskSize: "2G",
      pidfile,
      serial: serialLog,
      serialSocket: `${dir}/serial.sock`,
      memoryMiB: 3072,
      uefi: flow.uefi,
    });
    assert(boot.code === 0, `run-appliance failed:\n${boot.stdout}${boot.stderr}`);
    serial = await SerialConsole.connect(`${dir}/serial.sock`);

    if (flow.serialConsole) {
      // GRUB's serial-console entry, picked on the serial port within the menu's timeout.
      await serial.bootEntry(`KaOS ${VERSION} with the serial console`, 0, BOOT_TIMEOUT_MS);
      // The console loads its login at the first key (kattach runs it with --wait-key).
      await serial.waitFor(ACTIVATE_PROMPT, 0, BOOT_TIMEOUT_MS);
      await serial.send("\r");
      await serial.waitFor("Password for aqcli", 0, BOOT_TIMEOUT_MS);
      assertMatch(serial.text, /kattach: console menus on tty1, ttyS0/);
      assertMatch(
        serial.text,
        /data disk \/dev\/sd[a-z]3 \(KAOSDATA\) mounted on \/var\/lib\/kaos/,
      );
      lap(`boot from the USB stick (${firmware}, serial entry) until the serial login prompt`);

      // Log in with the release default; its change is forced.
      let at = serial.text.length;
      await serial.line(DEFAULT_PASSWORD);
      await serial.waitFor("must be changed", at);
      await serial.waitFor("New password", at);
      await serial.line(NEW_PASSWORD);
      await serial.waitFor("Retype new password", at);
      await serial.line(NEW_PASSWORD);
      await serial.waitFor("Password changed.", at);
      assert(!serial.text.includes(NEW_PASSWORD), "a password was echoed on the serial console");

      // Networking → vlan add, as an operator on the serial console would (the top menu follows
      // the password change at once: the choices are read from there on).
      at = serial.text.lastIndexOf("Password changed.");
      await serial.waitFor("Log out", at);
      await serial.choose("Networking");
      await serial.choose("vlan ›");
      await serial.choose("vlan add");
      for (const [prompt, answer] of [["ID", "42"], ["NAME", "serial"], ["CIDR", "10.42.0.0/24"]]) {
        await serial.waitFor(`? ${prompt}`, at);
        await serial.line(answer);
      }
      // Every optional flag (--gateway, --pool, and whatever vlan add grows) is left out: one
      // Enter per flag prompt, each sent once its prompt is drawn (no Enter runs ahead).
      const added = () => serial!.text.slice(at).includes("Added VLAN 42.");
      const flags = () => new Set(serial!.text.slice(at).match(/\? --[a-z-]+/g) ?? []).size;
      for (let answered = 0; !added(); answered++) {
        await waitFor(() => added() || flags() > answered, () => `flag prompt ${answered + 1}`, {
          timeoutMs: SERIAL_STEP_MS,
        });
        if (!added()) await serial.send("\r");
      }
      assertMatch(serial.text.slice(at), /= vlan add 42 serial 10\.42\.0\.0\/24\n/);
      assert(!/kattach: /.test(serial.text.slice(at)), "kattach's log reached the serial menu");
      lap("serial console: login, forced password change, VLAN 42 through the menus");

      // Read back over SSH, with the password changed on the serial console.
      await waitFor(
        async () => (await cli.run(["system", "status"])).code === 0,
        () => "SSH on the forwarded port to take the new password",
        { timeoutMs: BOOT_TIMEOUT_MS, intervalMs: 5_000 },
      );
      const vlans = await json<{ id: number; name: string; cidr: string }[]>(["vlan", "list"]);
      assertEquals(vlans.map((v) => [v.id, v.name, v.cidr]), [[42, "serial", "10.42.0.0/24"]]);
    } else {
      await waitForLog(serialLog, /ssh: listening on/, { timeoutMs: BOOT_TIMEOUT_MS });
      assertMatch(
        serial.text,
        /data disk \/dev\/sd[a-z]3 \(KAOSDATA\) mounted on \/var\/lib\/kaos/,
      );
      lap(`boot from the USB stick (${firmware}) until SSH listens`);

      // The forced change of the default password over SSH, in a real pty.
      await cli.changeDefaultPassword(`${dir}/login.sh`, BOOT_TIMEOUT_MS);
      lap("default password changed over SSH (tmux)");
    }

    // The client remembers the host key (known_hosts) and checks it strictly after the reboot.
    const hostKeyCheck = (mode: string, knownHosts: string) =>
      run(
        [
          ...["sshpass", "-e", "ssh", "-o", `StrictHostKeyChecking=${mode}`],
          ...["-o", `UserKnownHostsFile=${knownHosts}`, ...SSH_OPTS, "-p", String(port)],
          ...["aqcli@127.0.0.1", "system", "status"],
        ],
        { env: { SSHPASS: NEW_PASSWORD }, timeoutMs: EXEC_TIMEOUT_MS },
      );
    const remember = await hostKeyCheck("accept-new", `${dir}/known_hosts`);
    assertEquals(remember.code, 0, remember.stdout + remember.stderr);
    const keysBefore = await fingerprints(`${dir}/known_hosts`);

    const status = await json<{ mode: string; dataDisk: { state: string } }>(["system", "status"]);
    assertEquals(status.mode, "appliance");
    assertEquals(status.dataDisk.state, "mounted");

    // Guest storage: the blank virtio disk, not the boot stick.
    type Disks = {
      storages: { name: string; state: string; device: string; instances: number }[];
      disks: { device: string; inUseBy: string; candidate: boolean }[];
      notice: string | null;
    };
    const before = await json<Disks>(["storage", "list"]);
    assertMatch(before.notice ?? "", /No guest storage/);
    const stick = before.disks.find((d) => /KaOS boot stick/.test(d.inUseBy));
    assert(stick && !stick.candidate, `the stick is not marked in use: ${JSON.stringify(before)}`);
    const refused = await cli.run(["storage", "init", stick.device, "--yes"]);
    assertEquals(refused.code, 1, refused.stdout + refused.stderr);
    assertMatch(refused.stderr, /in use \(KaOS boot stick/);
    assertEquals(before.disks.filter((d) => d.candidate).map((d) => d.device), ["/dev/vda"]);
    assertMatch(await cli.ok(["storage", "init", "/dev/vda", "--name", "disk0", "--yes"]), /ready/);
    const inited = await json<Disks>(["storage", "list"]);
    assertEquals(
      inited.storages.map((s) => [s.name, s.state, s.device]),
      [["disk0", "mounted", "/dev/vda"]],
    );
    assertEquals(inited.notice, null);
    lap("storage init of the blank virtio disk");

    // The built-in queue: listed, read-only, its index verified with the image's key.
    const queues = await json<{ name: string }[]>(["appqueue", "list"]);
    assert(queues.some((q) => q.name === "local"), JSON.stringify(queues));
    const readOnly = await cli.run(["appqueue", "del", "local"]);
    assertEquals(readOnly.code, 1, readOnly.stdout + readOnly.stderr);
    assertMatch(readOnly.stderr, /built into the image \(read-only\)/);

    await cli.ok([
      ...["appqueue", "set", "community"],
      ...["--url", `http://10.0.2.2:${queuePort}/community/`, "--key", key.publicKey],
    ]);
    assertMatch(
      await cli.ok(["module", "install", "vkaos", "--queue", "community"], 600_000),
      /vkaos/,
    );
    assertMatch(await cli.ok(["module", "install", "web", "--queue", "community"], 600_000), /web/);
    assertMatch(await cli.ok(["module", "install", "hello", "--queue", "local"], 600_000), /hello/);
    const logged = await json<{ lines: string[] }>(["system", "log", "--lines", "2000"]);
    assertMatch(logged.lines.join("\n"), /appqueue: installed hello [\d.]+ from local/);
    lap("vkaos and web from the loopback queue, hello from the built-in queue local");

    await cli.ok(["config-group", "add", "web", "site", "title=KaOS-on-a-stick"]);
    await cli.ok(["vmimage", "create", "web", "--modules", "web", "--config-groups", "site"]);
    const deployed = await cli.run(
      ["deploy", "web", "--count", String(names.length), "--wait"],
      DEPLOY_TIMEOUT_MS,
    );
    assertEquals(deployed.code, 0, `deploy failed:\n${deployed.stdout}${deployed.stderr}`);
    for (const name of names) await cli.ok(["instance", "set", name, "--autostart", "yes"]);
    await allReady("after deploy");
    for (const name of names) {
      assertEquals((await json<InstanceInfo>(["instance", "show", name])).storage, "disk0");
    }
    const placed = await json<Disks>(["storage", "list"]);
    assertEquals(placed.storages.map((s) => [s.name, s.instances]), [["disk0", names.length]]);
    lap(`deploy web --count ${names.length} --wait (nested TCG), pages answer, on disk0`);

    const rebootFrom = serial.text.length;
    assertMatch(await cli.ok(["system", "reboot"]), /reboot/i);
    // Through the firmware and GRUB again, its default entry this time (no key pressed).
    await serial.waitFor(`Booting \`KaOS ${VERSION}'`, rebootFrom, BOOT_TIMEOUT_MS);
    await serial.waitFor("kattach: ready (appliance", rebootFrom, BOOT_TIMEOUT_MS);
    await waitFor(
      async () => (await cli.run(["system", "status", "--json"])).code === 0,
      () => "the new password to log in after the reboot",
      { timeoutMs: BOOT_TIMEOUT_MS, intervalMs: 5_000 },
    );
    lap("system reboot until SSH answers with the new password");

    const checked = await hostKeyCheck("yes", `${dir}/known_hosts`);
    assertEquals(checked.code, 0, `the host key changed:\n${checked.stdout}${checked.stderr}`);
    const fresh = await hostKeyCheck("accept-new", `${dir}/known_hosts-after`);
    assertEquals(fresh.code, 0, fresh.stdout + fresh.stderr);
    assertEquals(await fingerprints(`${dir}/known_hosts-after`), keysBefore);
    const groups = await json<{ name: string }[]>(["config-group", "list"]);
    assertEquals(groups.map((g) => g.name), ["site"]);
    const images = await json<{ name: string }[]>(["vmimage", "list"]);
    assertEquals(images.map((i) => i.name), ["web"]);
    const mods = await json<{ name: string }[]>(["module", "list"]);
    assertEquals(mods.map((m) => m.name).sort(), ["hello", "vkaos", "web"]);
    const vlans = await json<{ id: number }[]>(["vlan", "list"]);
    assertEquals(vlans.map((v) => v.id), flow.serialConsole ? [42] : []);
    const after = await json<Disks>(["storage", "list"]);
    assertEquals(
      after.storages.map((s) => [s.name, s.state, s.device]),
      [["disk0", "mounted", "/dev/vda"]],
    );
    // The instances' files are on the virtio disk itself (a whole-disk ext4), read from the host.
    for (const name of names) {
      // -c: the file system is mounted in the appliance, its bitmaps may be mid-update.
      const ls = await run(["debugfs", "-c", "-R", `ls -p /instances/${name}`, disk]);
      assertMatch(
        ls.stdout,
        /\.qcow2\//,
        `${name}: no overlay on disk0:\n${ls.stdout}${ls.stderr}`,
      );
    }
    await allReady("after the reboot (autostart)");
    for (const name of names) {
      await serial.waitFor(`supervisor: autostart ${name}`, rebootFrom, EXEC_TIMEOUT_MS);
    }
    assert(!/Kernel panic/.test(serial.text));
    lap("after the reboot: keys, configuration, storage, instances back (autostart)");
  } catch (err) {
    const tail = (serial?.text ?? await readLog(serialLog)).split("\n").slice(-80).join("\n");
    console.log(`the appliance's serial console, last lines:\n${tail}`);
    throw err;
  } finally {
    await serial?.close();
    await stopQemu(pidfile);
    await server.close();
    const total = (performance.now() - t0) / 1000;
    console.log(
      [...times.map(([w, s]) => `  ${w}: ${s.toFixed(1)} s`), `  total: ${total.toFixed(1)} s`]
        .join("\n"),
    );
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
}

Deno.test({
  name: "appliance USB stick, SeaBIOS: serial console, storage, two guests, reboot, all back",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: () => endToEnd({ uefi: false, serialConsole: true, instances: 2 }),
});

Deno.test({
  name: "appliance USB stick, OVMF (UEFI): SSH password, storage, a guest, reboot, all back",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: () => endToEnd({ uefi: true, serialConsole: false, instances: 1 }),
});
