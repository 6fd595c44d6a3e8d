/**
 * Image test: a power cut on the USB stick. Boots the image (scripts/build-image) as a USB stick
 * with scripts/run-appliance, changes the default password over SSH (real pty), then adds VLANs
 * over SSH one by one and SIGKILLs QEMU while they run; boots the same stick again and checks that
 * the store's integrity check is ok and every VLAN whose `vlan add` was acknowledged is there, and
 * that the new password still logs in. Times are printed (no timed assertions).
 */
import { deepStrictEqual as assertEquals, ok as assert } from "node:assert/strict";
import {
  ApplianceSsh,
  buildAppliance,
  readLog,
  startAppliance,
  stopQemu,
  waitForLog,
} from "./_appliance.ts";
import { sshPasswordOpts } from "./_ssh.ts";
import { freePort, waitFor } from "./_util.ts";

const NEW_PASSWORD = "Power-cut-test-1";
const BOOT_TIMEOUT_MS = 600_000;
const EXEC_TIMEOUT_MS = 180_000;
const SSH_OPTS = sshPasswordOpts({ connectTimeoutS: 60, serverAliveIntervalS: 30 });

Deno.test({
  name: "appliance USB stick: a power cut during configuration writes loses no acknowledged write",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const t0 = performance.now();
    const build = await buildAppliance();
    assert(build.code === 0, `the image build failed:\n${build.stdout}${build.stderr}`);
    const dir = await Deno.makeTempDir({ prefix: "kaos-appliance-power-" });
    const pidfile = `${dir}/qemu.pid`;
    const port = freePort();
    const cli = new ApplianceSsh({
      port,
      newPassword: NEW_PASSWORD,
      sshOpts: SSH_OPTS,
      execTimeoutMs: EXEC_TIMEOUT_MS,
      tmuxName: "kaos_power",
    });
    const boot = (serial: string) =>
      startAppliance({
        port,
        stick: `${dir}/stick.img`,
        disk: `${dir}/disk.img`,
        diskSize: "256M",
        pidfile,
        serial,
        memoryMiB: 1024,
      });
    let serial = `${dir}/serial-1.log`;
    try {
      const first = await boot(serial);
      assert(first.code === 0, `run-appliance failed:\n${first.stdout}${first.stderr}`);
      await waitForLog(serial, /ssh: listening on/, { timeoutMs: BOOT_TIMEOUT_MS });
      await cli.changeDefaultPassword(`${dir}/login.sh`, BOOT_TIMEOUT_MS);

      // Writes one after another; the power goes while one is in flight.
      const acked: number[] = [];
      let cut = false;
      const writes = (async () => {
        for (let id = 100; id < 400 && !cut; id++) {
          const r = await cli.run([
            "vlan",
            "add",
            String(id),
            `cut${id}`,
            `10.${id % 250}.${id >> 8}.0/24`,
          ]);
          if (r.code === 0 && !cut) acked.push(id);
        }
      })();
      await waitFor(() => acked.length >= 5, () => `5 acknowledged writes (${acked})`, {
        timeoutMs: 600_000,
        intervalMs: 100,
      });
      const qemuPid = Number((await readLog(pidfile)).trim());
      Deno.kill(qemuPid, "SIGKILL");
      cut = true;
      await waitFor(
        async () => !(await Deno.stat(`/proc/${qemuPid}`).then(() => true, () => false)),
        () => `QEMU (pid ${qemuPid}) gone after SIGKILL`,
        { timeoutMs: 30_000, intervalMs: 100 },
      );
      await writes;
      console.log(`  power cut after ${acked.length} acknowledged writes: ${acked.join(" ")}`);

      serial = `${dir}/serial-2.log`;
      const second = await boot(serial);
      assert(second.code === 0, `run-appliance failed:\n${second.stdout}${second.stderr}`);
      const log = await waitForLog(serial, /ssh: listening on/, { timeoutMs: BOOT_TIMEOUT_MS });
      assert(/config store open \(schema \d+, integrity ok\)/.test(log), log);
      const status = JSON.parse(await cli.ok(["system", "status", "--json"]));
      assertEquals(status.store.integrity, "ok");
      assertEquals(status.dataDisk.state, "mounted");
      const vlans = JSON.parse(await cli.ok(["vlan", "list", "--json"])) as { id: number }[];
      const have = new Set(vlans.map((v) => v.id));
      assertEquals(acked.filter((id) => !have.has(id)), [], "acknowledged writes were lost");
    } catch (err) {
      const tail = (await readLog(serial)).split("\n").slice(-60).join("\n");
      console.log(`the appliance's serial log, last lines:\n${tail}`);
      throw err;
    } finally {
      await stopQemu(pidfile);
      console.log(`  total: ${((performance.now() - t0) / 1000).toFixed(1)} s`);
      await Deno.remove(dir, { recursive: true }).catch(() => {});
    }
  },
});
