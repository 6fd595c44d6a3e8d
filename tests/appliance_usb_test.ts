/**
 * Image test, end to end from blank, once under SeaBIOS and once under OVMF: the built image
 * (scripts/build-image) written to a fresh USB stick file and booted by scripts/run-appliance
 * (xHCI + usb-storage, a blank virtio disk beside it). Over SSH on the forwarded port: the forced
 * change of the default password (real pty in tmux), the built-in queue `local` (its index
 * verified with the image's key, `hello` installed from it with no network), vKaOS and `web` from
 * a loopback AppQueue the test serves on the host (reached as 10.0.2.2), a configuration group, a
 * VM image, two instances deployed whose pages kattach fetches (HTTP readiness through each
 * instance's forward), autostart on; then `system reboot`. After the reboot: the new password
 * logs in, the host keys have the same fingerprints, the configuration is there and both
 * instances are back (autostart) with their pages answering. Under SeaBIOS the same boot then
 * takes a power cut: QEMU is SIGKILLed while VLANs are added over SSH one by one; after the next
 * boot the store's integrity check is ok and every acknowledged VLAN is there.
 *
 * The queue's web and vkaos are the fixtures with the readiness timeouts raised to 900 s (nested
 * TCG) and web's readiness an HTTP GET of its page, as in tests/appliance_guests_test.ts.
 * Times are printed (no timed assertions).
 *
 * Not yet in the suite: it has not passed here yet (on the overloaded machine that wrote it, the
 * two nested guests were not ready within 15 min) and it has no `storage init` step. It runs only
 * with KAOS_E2E=1 (`KAOS_E2E=1 scripts/test tests/appliance_usb_test.ts`); README "Not yet".
 */
import {
  deepStrictEqual as assertEquals,
  match as assertMatch,
  ok as assert,
} from "node:assert/strict";
import { buildQueue, generateKeyFile } from "../appqueue/mod.ts";
import { DEFAULT_PASSWORD } from "../kattach/auth.ts";
import { buildAppliance, readLog, startAppliance, stopQemu, waitForLog } from "./_appliance.ts";
import { AppQueueServer } from "./_appqueue_server.ts";
import { buildFixtures, FIXTURES_OUT } from "./_harness.ts";
import { sshPasswordOpts, writeLoginScript } from "./_ssh.ts";
import { freePort, run, Tmux, waitFor } from "./_util.ts";

const NEW_PASSWORD = "Usb-stick-e2e-1";
/** Boot of the image under TCG until its SSH CLI answers (loaded CI: minutes). */
const BOOT_TIMEOUT_MS = 600_000;
/** One SSH exec command against the emulated appliance. */
const EXEC_TIMEOUT_MS = 180_000;
/** Two nested TCG guests until ready. */
const DEPLOY_TIMEOUT_MS = 1_500_000;
const READINESS_TIMEOUT_S = 900;
const SSH_OPTS = sshPasswordOpts({ connectTimeoutS: 60, serverAliveIntervalS: 30 });

/** Copies a fixture module directory, editing its appmgr.aq. */
async function moduleCopy(
  name: string,
  to: string,
  edit: (appmgr: Record<string, unknown>) => void,
): Promise<string> {
  const dir = `${to}/${name}`;
  await Deno.mkdir(dir, { recursive: true });
  for (const e of Deno.readDirSync(`${FIXTURES_OUT}/${name}`)) {
    if (e.isFile) await Deno.copyFile(`${FIXTURES_OUT}/${name}/${e.name}`, `${dir}/${e.name}`);
  }
  const appmgr = JSON.parse(await Deno.readTextFile(`${dir}/appmgr.aq`));
  edit(appmgr);
  await Deno.writeTextFile(`${dir}/appmgr.aq`, JSON.stringify(appmgr, null, 2) + "\n");
  return dir;
}

/** The host key fingerprints the appliance's sshd announced in its last "listening on" line. */
async function announcedKeys(serial: string): Promise<string> {
  const all = [...(await readLog(serial)).matchAll(/ssh: listening on \S+ \(host keys ([^)]*)\)/g)];
  assert(all.length > 0, "no `ssh: listening on` line in the serial log");
  return all.at(-1)![1];
}

interface InstanceInfo {
  name: string;
  state: string;
  forwards?: { hostPort: number; guestPort: number }[];
  health?: { module: string; status: string; detail: string }[];
}

async function endToEnd(uefi: boolean): Promise<void> {
  const t0 = performance.now();
  const times: [string, number][] = [];
  let mark = t0;
  const lap = (what: string) => {
    const now = performance.now();
    times.push([what, (now - mark) / 1000]);
    mark = now;
  };

  const build = await buildAppliance();
  assert(build.code === 0, `the image build failed:\n${build.stdout}${build.stderr}`);
  await buildFixtures();
  lap("image and fixtures build (cached)");

  const dir = await Deno.makeTempDir({ prefix: "kaos-appliance-usb-" });
  const pidfile = `${dir}/qemu.pid`;
  const serial = `${dir}/serial.log`;
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
  const tmux = new Tmux({
    name: `kaos_usb_${uefi ? "uefi" : "bios"}`,
    holdSeconds: 600,
    commandTimeoutMs: 60_000,
    failOnExit: true,
  });
  const ssh = (args: string[], timeoutMs = EXEC_TIMEOUT_MS) =>
    run(["sshpass", "-e", "ssh", ...SSH_OPTS, "-p", String(port), "aqcli@127.0.0.1", ...args], {
      env: { SSHPASS: NEW_PASSWORD },
      timeoutMs,
    });
  const ok = async (args: string[], timeoutMs = EXEC_TIMEOUT_MS) => {
    const r = await ssh(args, timeoutMs);
    assertEquals(r.code, 0, `${args.join(" ")} failed (${r.code}):\n${r.stdout}${r.stderr}`);
    return r.stdout;
  };
  const bothReady = async (what: string) => {
    let last = "";
    await waitFor(
      async () => {
        const r = await ssh(["instance", "list", "--json"]);
        last = r.stdout + r.stderr;
        if (r.code !== 0) return false;
        const list = JSON.parse(r.stdout) as InstanceInfo[];
        const ready = (i: InstanceInfo) =>
          i.state === "running" && i.health?.find((h) => h.module === "web")?.status === "ready";
        return list.length === 2 && list.every(ready);
      },
      () => `web-1 and web-2 running with their pages answering (${what}):\n${last}`,
      { timeoutMs: DEPLOY_TIMEOUT_MS, intervalMs: 10_000 },
    );
    const list = JSON.parse(last) as InstanceInfo[];
    for (const inst of list) {
      const web = inst.health!.find((h) => h.module === "web")!;
      const fwd = inst.forwards?.find((f) => f.guestPort === 80);
      assert(fwd, `${inst.name}: no forward to port 80:\n${last}`);
      // kattach inside the appliance fetched the page through the instance's forward.
      assertMatch(web.detail, new RegExp(`GET http://127\\.0\\.0\\.1:${fwd.hostPort}/: 200`));
    }
    return list;
  };
  const boots = async () =>
    (await readLog(serial)).match(/kattach: ready \(appliance/g)?.length ?? 0;

  try {
    const boot = await startAppliance({
      port,
      stick: `${dir}/stick.img`,
      disk: `${dir}/disk.img`,
      diskSize: "2G",
      pidfile,
      serial,
      memoryMiB: 3072,
      uefi,
    });
    assert(boot.code === 0, `run-appliance failed:\n${boot.stdout}${boot.stderr}`);
    let log = await waitForLog(serial, /ssh: listening on/, { timeoutMs: BOOT_TIMEOUT_MS });
    assertMatch(log, /data disk \/dev\/sd[a-z]3 \(KAOSDATA\) mounted on \/var\/lib\/kaos/);
    lap(`boot from the USB stick (${uefi ? "OVMF" : "SeaBIOS"}) until SSH listens`);

    // The forced change of the default password, in a real pty.
    const script = `${dir}/login.sh`;
    await writeLoginScript(script, { port, password: DEFAULT_PASSWORD, sshOpts: SSH_OPTS });
    await tmux.start(script);
    await tmux.waitFor("New password", BOOT_TIMEOUT_MS);
    await tmux.type(NEW_PASSWORD);
    await tmux.waitFor("Retype new password", EXEC_TIMEOUT_MS);
    await tmux.type(NEW_PASSWORD);
    await tmux.waitFor("Password changed.", EXEC_TIMEOUT_MS);
    await tmux.stop();
    // The client remembers the host keys (known_hosts) and checks them strictly after the reboot.
    const knownHosts = `${dir}/known_hosts`;
    const strict = (mode: string) => [
      ...["-o", `StrictHostKeyChecking=${mode}`, "-o", `UserKnownHostsFile=${knownHosts}`],
      ...SSH_OPTS,
    ];
    const remember = await run(
      ["sshpass", "-e", "ssh", ...strict("accept-new"), "-p", String(port), "aqcli@127.0.0.1"]
        .concat(["system", "status"]),
      { env: { SSHPASS: NEW_PASSWORD }, timeoutMs: EXEC_TIMEOUT_MS },
    );
    assertEquals(remember.code, 0, remember.stdout + remember.stderr);
    const keysBefore = await announcedKeys(serial);
    lap("default password changed over SSH (tmux)");

    const status = JSON.parse(await ok(["system", "status", "--json"]));
    assertEquals(status.mode, "appliance");
    assertEquals(status.dataDisk.state, "mounted");

    // The built-in queue: listed, read-only, its index verified with the image's key.
    const queues = JSON.parse(await ok(["appqueue", "list", "--json"])) as { name: string }[];
    assert(queues.some((q) => q.name === "local"), JSON.stringify(queues));
    const refused = await ssh(["appqueue", "del", "local"]);
    assertEquals(refused.code, 1, refused.stdout + refused.stderr);
    assertMatch(refused.stderr, /built into the image \(read-only\)/);

    await ok([
      ...["appqueue", "set", "community"],
      ...["--url", `http://10.0.2.2:${queuePort}/community/`, "--key", key.publicKey],
    ]);
    assertMatch(await ok(["module", "install", "vkaos", "--queue", "community"], 600_000), /vkaos/);
    assertMatch(await ok(["module", "install", "web", "--queue", "community"], 600_000), /web/);
    assertMatch(await ok(["module", "install", "hello", "--queue", "local"], 600_000), /hello/);
    assertMatch(await readLog(serial), /appqueue: installed hello [\d.]+ from local/);
    lap("vkaos and web from the loopback queue, hello from the built-in queue local");

    await ok(["config-group", "add", "web", "site", "title=KaOS-on-a-stick"]);
    await ok(["vmimage", "create", "web", "--modules", "web", "--config-groups", "site"]);
    const deployed = await ssh(["deploy", "web", "--count", "2", "--wait"], DEPLOY_TIMEOUT_MS);
    assertEquals(deployed.code, 0, `deploy failed:\n${deployed.stdout}${deployed.stderr}`);
    for (const name of ["web-1", "web-2"]) {
      await ok(["instance", "set", name, "--autostart", "yes"]);
    }
    await bothReady("after deploy");
    lap("deploy web --count 2 --wait (nested TCG) and both pages answer");

    assertMatch(await ok(["system", "reboot"]), /reboot/i);
    await waitFor(async () => await boots() >= 2, () => "a second boot in the serial log", {
      timeoutMs: BOOT_TIMEOUT_MS,
      intervalMs: 2_000,
    });
    log = await readLog(serial);
    assertMatch(log.slice(log.lastIndexOf("PID 1: deno")), /ssh: listening on|sshd: started/);
    await waitFor(
      async () => (await ssh(["system", "status", "--json"])).code === 0,
      () => "the new password to log in after the reboot",
      { timeoutMs: BOOT_TIMEOUT_MS, intervalMs: 5_000 },
    );
    lap("system reboot until SSH answers with the new password");

    assertEquals(await announcedKeys(serial), keysBefore);
    const checked = await run(
      ["sshpass", "-e", "ssh", ...strict("yes"), "-p", String(port), "aqcli@127.0.0.1"]
        .concat(["system", "status"]),
      { env: { SSHPASS: NEW_PASSWORD }, timeoutMs: EXEC_TIMEOUT_MS },
    );
    assertEquals(checked.code, 0, `the host key changed:\n${checked.stdout}${checked.stderr}`);
    const groups = JSON.parse(await ok(["config-group", "list", "--json"])) as { name: string }[];
    assertEquals(groups.map((g) => g.name), ["site"]);
    const images = JSON.parse(await ok(["vmimage", "list", "--json"])) as { name: string }[];
    assertEquals(images.map((i) => i.name), ["web"]);
    const mods = JSON.parse(await ok(["module", "list", "--json"])) as { name: string }[];
    assertEquals(mods.map((m) => m.name).sort(), ["hello", "vkaos", "web"]);
    const back = await bothReady("after the reboot (autostart)");
    assertEquals(back.map((i) => i.name).sort(), ["web-1", "web-2"]);
    log = await readLog(serial);
    assertMatch(log, /supervisor: autostart web-1/);
    assertMatch(log, /supervisor: autostart web-2/);
    assert(!/Kernel panic/.test(log));
    lap("after the reboot: keys, configuration, both instances back (autostart)");

    if (!uefi) {
      // Power cut: SIGKILL QEMU while configuration writes run over SSH, then boot again.
      const acked: number[] = [];
      let cut = false;
      const writes = (async () => {
        for (let id = 100; id < 200 && !cut; id++) {
          const r = await ssh(["vlan", "add", String(id), `cut${id}`, `10.${id}.0.0/24`]);
          if (r.code === 0 && !cut) acked.push(id);
        }
      })();
      await waitFor(() => acked.length >= 5, () => `5 acknowledged writes (${acked})`, {
        timeoutMs: 600_000,
        intervalMs: 200,
      });
      const qemuPid = Number((await readLog(pidfile)).trim());
      Deno.kill(qemuPid, "SIGKILL");
      cut = true;
      await writes;
      lap(`power cut (SIGKILL) after ${acked.length} acknowledged writes`);
      const again = await startAppliance({
        port,
        stick: `${dir}/stick.img`,
        disk: `${dir}/disk.img`,
        diskSize: "2G",
        pidfile,
        serial: `${dir}/serial-after-cut.log`,
        memoryMiB: 3072,
      });
      assert(again.code === 0, `run-appliance failed:\n${again.stdout}${again.stderr}`);
      await waitForLog(`${dir}/serial-after-cut.log`, /ssh: listening on/, {
        timeoutMs: BOOT_TIMEOUT_MS,
      });
      const after = JSON.parse(await ok(["system", "status", "--json"]));
      assertEquals(after.store.integrity, "ok");
      const vlans = JSON.parse(await ok(["vlan", "list", "--json"])) as { id: number }[];
      const have = new Set(vlans.map((v) => v.id));
      const lost = acked.filter((id) => !have.has(id));
      assertEquals(lost, [], `acknowledged writes lost in the power cut: ${lost}`);
      lap("boot after the power cut: integrity ok, every acknowledged write there");
    }
  } catch (err) {
    const tail = (await readLog(serial)).split("\n").slice(-80).join("\n");
    console.log(`the appliance's serial log, last lines:\n${tail}`);
    throw err;
  } finally {
    await tmux.stop();
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

const E2E = Deno.env.get("KAOS_E2E") === "1";

Deno.test({
  name: "appliance USB stick, SeaBIOS: from blank to two guests, reboot, everything back",
  sanitizeResources: false,
  sanitizeOps: false,
  ignore: !E2E,
  fn: () => endToEnd(false),
});

Deno.test({
  name: "appliance USB stick, OVMF (UEFI): from blank to two guests, reboot, everything back",
  sanitizeResources: false,
  sanitizeOps: false,
  ignore: !E2E,
  fn: () => endToEnd(true),
});
