/**
 * The host's shutdown (`Supervisor.stopAll`, run by `system shutdown|reboot`) with a guest still
 * starting, against real QEMU (TCG) in an in-process hosted kattach. The hooks are deterministic
 * gates, not sleeps: a `qemu-system-x86_64` first on PATH that waits for a file before it execs
 * the real QEMU (spawned, its QMP not there yet), and a deploy's launch gate (`SharedPrep`) that
 * holds a start before its spawn. Three cases: the QMP attaches after the shutdown began (stopped
 * the way attached guests are: its power button is pressed again until its init listens, and it
 * powers off cleanly), it does not attach by the deadline (killed by its pid), the
 * start had not spawned (it does not), and kattach's own stop (detach) with a start waiting for
 * its QMP (let go of once attached, re-attached by the next kattach), and `instance stop` of a
 * starting instance (waits for the attach, not for readiness). Each ends with no process
 * of the instance left and the instance `stopped`.
 */
import assert from "node:assert/strict";
import { startKattach } from "../kattach/boot.ts";
import type { RunningKattach } from "../kattach/boot.ts";
import { SharedPrep } from "../kattach/instance_runtime.ts";
import { getRuntime } from "../kattach/store_instances.ts";
import { supervisorOf } from "../kattach/supervisor.ts";
import { buildFixtures, killGuests, qemuGate, REPO_ROOT, TestKattach } from "./_harness.ts";
import { pathExists, waitFor } from "./_util.ts";

const OUT = `${REPO_ROOT}/fixtures/out`;
const INST = "web-1";

/** Processes whose command line names the instance directories of `stateDir` (QEMU or its gate). */
function processesOf(stateDir: string): number[] {
  const pids: number[] = [];
  for (const e of Deno.readDirSync("/proc")) {
    if (!/^\d+$/.test(e.name)) continue;
    try {
      const cmd = Deno.readTextFileSync(`/proc/${e.name}/cmdline`);
      const stat = Deno.readTextFileSync(`/proc/${e.name}/stat`);
      if (cmd.includes(`${stateDir}/instances/`) && !stat.includes(") Z ")) {
        pids.push(Number(e.name));
      }
    } catch { /* ended */ }
  }
  return pids;
}

/** Polls until `check` holds, for at most 60 s; fails saying it waited for `what`. */
function until(what: string, check: () => boolean): Promise<void> {
  return waitFor(check, () => what, { timeoutMs: 60_000, intervalMs: 50 });
}

Deno.test({
  name:
    "shutdown: stopAll stops the starts in flight (QMP late, QMP never, not spawned); detach; stop",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    await buildFixtures();
    const setup = await TestKattach.start();
    const stateDir = setup.stateDir;
    const { dir: gate, path } = await qemuGate(
      "kaos-shutdown-gate-",
      (gate, realQemu) =>
        `#!/bin/sh\n: > ${gate}/spawned\nwhile [ ! -e ${gate}/go ]; do sleep 0.05; done\nexec ${realQemu} "$@"\n`,
    );
    let kt: RunningKattach | undefined;
    const log: string[] = [];
    const boot = async () => {
      await kt?.stop();
      log.length = 0;
      await Deno.remove(`${gate}/spawned`).catch(() => {});
      await Deno.remove(`${gate}/go`).catch(() => {});
      kt = await startKattach({ mode: "hosted", stateDir, sshPort: 0, log: (l) => log.push(l) });
      return { k: kt.k, sup: supervisorOf(kt.k) };
    };
    const logged = (part: string) => log.some((l) => l.includes(part));
    try {
      for (const m of ["vkaos", "web"]) {
        assert.equal((await setup.aq("module", "import", `${OUT}/${m}`)).code, 0);
      }
      await setup.json("vmimage", "create", "web", "--modules", "web");
      await setup.json("deploy", "web", "--count", "1", "--no-start");
      await setup.stop();
      Deno.env.set("PATH", `${gate}/bin:${path}`);

      // 1. Spawned, QMP not attached when the shutdown begins; it attaches, then is stopped
      //    as attached guests are: ACPI power-off at once, which a guest this young misses (its
      //    kernel and acpid are not up yet), then again every 2 s until its init listens; it
      //    powers off cleanly (its init's "powering off": services stopped, disks unmounted,
      //    synced; QEMU's SHUTDOWN reason guest-shutdown), not by the quit at the deadline (a
      //    bound only, 120 s: a booting guest under TCG on a loaded machine is slow).
      {
        const { k, sup } = await boot();
        const start = sup.start(INST).then(() => "attached", (e) => `failed: ${e.message}`);
        await until("QEMU's gate to run", () => pathExists(`${gate}/spawned`));
        assert.notDeepEqual(processesOf(stateDir), []);
        const stopping = sup.stopAll({ timeoutSeconds: 120 });
        assert.ok(logged(`stopping 1 guest(s): none; starting: ${INST}`), log.join("\n"));
        await Deno.writeTextFile(`${gate}/go`, "");
        assert.deepEqual(await stopping, [INST]);
        assert.equal(await start, "attached");
        assert.ok(logged(`supervisor: ${INST} stopped`), log.join("\n"));
        assert.ok(!logged("before its QMP attached"), log.join("\n"));
        assert.ok(!logged(`${INST}: no power-off after`), log.join("\n"));
        assert.deepEqual(processesOf(stateDir), []);
        assert.equal(k.store.getInstance(INST)?.state, "stopped");
        const rt = getRuntime(k.store, INST);
        assert.equal(rt.pid, null);
        assert.match(
          rt.lastExit,
          /^stopped by the operator: the guest powered off after \d+ press(es)? of its power button$/,
        );
        const serial = await Deno.readFile(`${stateDir}/instances/${INST}/serial.log`);
        const thisBoot = new TextDecoder().decode(serial.subarray(rt.serialFrom));
        assert.match(thisBoot, /KAOS-GUEST: powering off/, thisBoot);
        // How many presses it took (diagnostic: the count depends on the guest's boot speed).
        console.log(`case 1: ${rt.lastExit}`);
      }

      // 2. Spawned, its QMP never comes before the deadline: its pid is killed.
      {
        const { k, sup } = await boot();
        const start = sup.start(INST).then(() => "attached", (e) => `failed: ${e.message}`);
        await until("QEMU's gate to run", () => pathExists(`${gate}/spawned`));
        assert.deepEqual(await sup.stopAll({ timeoutSeconds: 1 }), [INST]);
        assert.match(await start, /^failed: /);
        assert.deepEqual(processesOf(stateDir), []);
        assert.equal(k.store.getInstance(INST)?.state, "stopped");
        assert.equal(
          getRuntime(k.store, INST).lastExit,
          "killed: the host shut down before its QMP attached",
        );
      }

      // 3. Not spawned yet (held at a deploy's launch gate): it does not spawn.
      {
        const { k, sup } = await boot();
        const shared = new SharedPrep([INST, "held"]);
        const start = sup.launch(INST, { shared }).then(
          () => "attached",
          (e) => `failed: ${e.message}`,
        );
        await until(
          "the start to be under way",
          () => k.store.getInstance(INST)?.state === "starting",
        );
        const stopping = sup.stopAll({ timeoutSeconds: 10 });
        shared.arrive("held"); // opens the gate
        assert.deepEqual(await stopping, [INST]);
        assert.equal(await start, `failed: Cannot start ${INST}: the host is shutting down`);
        assert.ok(!pathExists(`${gate}/spawned`), "no QEMU was spawned");
        assert.deepEqual(processesOf(stateDir), []);
        assert.equal(k.store.getInstance(INST)?.state, "stopped");
        assert.equal(
          getRuntime(k.store, INST).lastExit,
          "start cancelled: the host is shutting down",
        );
      }

      // 4. kattach itself stops (detach) while a start waits for its QMP: it lets go of the QEMU
      //    once attached; the next kattach re-attaches it, and its shutdown stops it.
      {
        const { sup } = await boot();
        const start = sup.start(INST).then(() => "attached", (e) => `failed: ${e.message}`);
        await until("QEMU's gate to run", () => pathExists(`${gate}/spawned`));
        const detaching = kt!.stop();
        kt = undefined;
        await Deno.writeTextFile(`${gate}/go`, "");
        await detaching;
        assert.equal(await start, "attached");
        const left = processesOf(stateDir);
        assert.equal(left.length, 1, "its QEMU runs on");
        const { k, sup: again } = await boot();
        assert.ok(logged(`re-attached ${INST} (pid ${left[0]})`), log.join("\n"));
        assert.deepEqual(await again.stopAll({ timeoutSeconds: 10 }), [INST]);
        assert.deepEqual(processesOf(stateDir), []);
        assert.equal(k.store.getInstance(INST)?.state, "stopped");
      }

      // 5. `instance stop` of a starting instance (a start --wait whose QMP has not attached): the
      //    stop waits for the attach only, not for the readiness the start waits for.
      {
        const { k, sup } = await boot();
        const start = sup.start(INST, { wait: true }).then(
          (i) => i.state,
          (e) => `failed: ${e.message}`,
        );
        await until("QEMU's gate to run", () => pathExists(`${gate}/spawned`));
        const stop = sup.stop(INST, { timeoutSeconds: 1 });
        await Deno.writeTextFile(`${gate}/go`, "");
        assert.equal((await stop).state, "stopped");
        assert.notEqual(await start, "running");
        assert.ok(!logged(`${INST} is ready`), log.join("\n"));
        assert.deepEqual(processesOf(stateDir), []);
        assert.equal(k.store.getInstance(INST)?.state, "stopped");
      }
    } finally {
      Deno.env.set("PATH", path);
      await Deno.writeTextFile(`${gate}/go`, "").catch(() => {});
      await kt?.stop().catch(() => {});
      for (const pid of processesOf(stateDir)) {
        try {
          Deno.kill(pid, "SIGKILL");
        } catch { /* gone */ }
      }
      await setup.dispose();
      await killGuests(stateDir);
      await Deno.remove(gate, { recursive: true }).catch(() => {});
    }
  },
});
