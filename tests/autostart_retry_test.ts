/**
 * Autostart at kattach's start when the first start fails, against real QEMU (TCG) in an
 * in-process hosted kattach. The failure is deterministic, not timed: a `qemu-system-x86_64`
 * first on PATH that refuses to start (as QEMU refuses bad options: a line on stderr, exit 1)
 * while a file says so, and the first time it runs besides. With restart policy `never` the
 * failed autostart is not tried again (`failed`, its reason as last exit); with the default
 * `on-failure` it is tried again after the restart back-off (1 s) and the guest comes up
 * (`running`: its readiness passed). The same retry for a restart after a crash whose start is
 * refused (SIGKILL to the guest's QEMU, then the wrapper refuses until the test sees the refusal).
 */
import assert from "node:assert/strict";
import { startKattach } from "../kattach/boot.ts";
import type { RunningKattach } from "../kattach/boot.ts";
import { getRuntime, setInstancePolicy } from "../kattach/store_instances.ts";
import { supervisorOf } from "../kattach/supervisor.ts";
import { buildFixtures, killGuests, qemuGate, REPO_ROOT, TestKattach } from "./_harness.ts";
import { pathExists, waitFor } from "./_util.ts";

const OUT = `${REPO_ROOT}/fixtures/out`;
const INST = "web-1";
const REFUSAL = "qemu-system-x86_64: refused by the test";

Deno.test({
  name:
    "autostart, restart: a start that fails is tried again with back-off (not with policy never)",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    await buildFixtures();
    const setup = await TestKattach.start();
    const stateDir = setup.stateDir;
    const { dir: gate, path } = await qemuGate(
      "kaos-autostart-gate-",
      (gate, realQemu) =>
        `#!/bin/sh
if [ -e ${gate}/refuse ] || [ ! -e ${gate}/refused ]; then
  : > ${gate}/refused
  echo "${REFUSAL}" >&2
  exit 1
fi
exec ${realQemu} "$@"
`,
    );
    let kt: RunningKattach | undefined;
    const log: string[] = [];
    const logged = (part: string) => log.some((l) => l.includes(part));
    const boot = async () => {
      await kt?.stop();
      log.length = 0;
      kt = await startKattach({ mode: "hosted", stateDir, sshPort: 0, log: (l) => log.push(l) });
      return kt.k;
    };
    try {
      for (const m of ["vkaos", "web"]) {
        assert.equal((await setup.aq("module", "import", `${OUT}/${m}`)).code, 0);
      }
      await setup.json("vmimage", "create", "web", "--modules", "web");
      await setup.json("deploy", "web", "--count", "1", "--no-start");
      await setup.json("instance", "set", INST, "--autostart", "yes", "--restart-policy", "never");
      await setup.stop();
      Deno.env.set("PATH", `${gate}/bin:${path}`);

      // 1. Restart policy never: the failed autostart is not tried again.
      {
        await Deno.writeTextFile(`${gate}/refuse`, "");
        const k = await boot();
        await waitFor(
          () => logged(`autostart of ${INST} failed:`),
          () => `the autostart of ${INST} to fail:\n${log.join("\n")}`,
          { timeoutMs: 60_000 },
        );
        assert.ok(logged(REFUSAL), log.join("\n"));
        assert.ok(!logged("again"), log.join("\n"));
        assert.equal(k.store.getInstance(INST)?.state, "failed");
        assert.match(
          getRuntime(k.store, INST).lastExit,
          /^QEMU refused to start: .*refused by the/,
        );
        setInstancePolicy(k.store, INST, { restartPolicy: "on-failure" });
      }

      // 2. Restart policy on-failure: the first start fails, the next one (1 s later) runs.
      {
        await Deno.remove(`${gate}/refuse`);
        await Deno.remove(`${gate}/refused`);
        const k = await boot();
        await waitFor(
          () => k.store.getInstance(INST)?.state === "running",
          () =>
            `${INST} running after its autostart failed once (it is ${
              k.store.getInstance(INST)?.state
            }):\n${log.join("\n")}`,
          { timeoutMs: 120_000, intervalMs: 200 },
        );
        assert.ok(pathExists(`${gate}/refused`), "the first start was refused");
        assert.ok(
          logged(
            `autostart of ${INST} failed: Cannot start ${INST}: QEMU refused to start: ${REFUSAL}`,
          ),
          log.join("\n"),
        );
        assert.ok(logged(`autostart of ${INST} (again)`), log.join("\n"));
        assert.ok(logged(`started ${INST} (pid`), log.join("\n"));
        assert.ok(logged(`${INST} is ready`), log.join("\n"));
        assert.equal(k.store.getInstance(INST)?.state, "running");
      }

      // 3. The same for a restart after a crash: QEMU killed, its restart refused, tried again.
      {
        const k = kt!.k;
        const sup = supervisorOf(k);
        const before = sup.pidOf(INST);
        assert.ok(before, `${INST} has a QEMU`);
        await Deno.writeTextFile(`${gate}/refuse`, "");
        Deno.kill(before, "SIGKILL");
        const refused =
          `restart of ${INST} failed: Cannot start ${INST}: QEMU refused to start: ${REFUSAL}; again in`;
        await waitFor(
          () => logged(refused),
          () => `the restart of ${INST} to be refused:\n${log.join("\n")}`,
          { timeoutMs: 60_000 },
        );
        await Deno.remove(`${gate}/refuse`);
        await waitFor(
          () => k.store.getInstance(INST)?.state === "running",
          () =>
            `${INST} running after its restart failed once (it is ${
              k.store.getInstance(INST)?.state
            }):\n${log.join("\n")}`,
          { timeoutMs: 120_000, intervalMs: 200 },
        );
        assert.ok(logged(`restart of ${INST} (again)`), log.join("\n"));
        const after = sup.pidOf(INST);
        assert.ok(after !== null && after !== before, `a new QEMU: ${after}`);
        assert.equal(getRuntime(k.store, INST).restarts, 1);
      }
    } finally {
      Deno.env.set("PATH", path);
      await kt?.stop().catch(() => {});
      await setup.dispose();
      await killGuests(stateDir);
      await Deno.remove(gate, { recursive: true }).catch(() => {});
    }
  },
});
