/**
 * kattach never lies about guests, against real QEMU: deploy reports per instance what happened
 * and exits 1 naming each instance that failed and why; a QEMU that exits before its first QMP
 * exchange is reported with its own words at once; one that starts but fails its first QMP
 * exchange is killed and its instance is `failed` with the reason; restart policy `always`
 * restarts a guest that powered itself off; autostart instances come up when kattach starts with
 * an empty runtime directory (a reboot). One kattach for all of it.
 */
import assert from "node:assert/strict";
import type { DeployedInstance, Instance } from "../ipc/mod.ts";
import { buildFixtures, killGuests, REPO_ROOT, TestKattach } from "./_harness.ts";
import { run, waitFor } from "./_util.ts";

const OUT = `${REPO_ROOT}/fixtures/out`;
const WAIT = { timeoutMs: 120_000, intervalMs: 200 };

/**
 * A `qemu-system-x86_64` in front of the real one: for instances of the VM image `hmp` it serves
 * the human monitor where QMP should be, so QEMU runs but its first QMP exchange fails; for
 * those of `bad` it refuses its options as QEMU does, and exits.
 */
const WRAPPER = `#!/bin/bash
here=$(dirname "$0")
real=$(PATH=\${PATH//$here:/} command -v qemu-system-x86_64)
args=()
hmp=0
for a in "$@"; do case "$a" in *process=kaos-hmp-*) hmp=1 ;; esac; done
for a in "$@"; do case "$a" in
  *process=kaos-bad-*) echo "qemu-system-x86_64: -bad: invalid option" >&2; exit 1 ;;
esac; done
for a in "$@"; do
  if [ $hmp = 1 ] && [ "$a" = chardev=qmp,mode=control ]; then args+=(chardev=qmp,mode=readline)
  else args+=("$a"); fi
done
exec "$real" "\${args[@]}"
`;

function alive(pid: number): boolean {
  try {
    return !Deno.readTextFileSync(`/proc/${pid}/stat`).includes(") Z ");
  } catch {
    return false;
  }
}

Deno.test({
  name:
    "reliability: deploy tells per instance, QMP failure kills QEMU, always restarts, autostart",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    await buildFixtures();
    const bin = await Deno.makeTempDir({ prefix: "kaos-rel-bin-" });
    await Deno.writeTextFile(`${bin}/qemu-system-x86_64`, WRAPPER, { mode: 0o755 });
    await Deno.chmod(bin, 0o755); // QEMU's user (kaos-qemu when kattach is root) must reach it
    const k = new TestKattach(await Deno.makeTempDir({ prefix: "kaos-rel-" }), {
      env: { PATH: `${bin}:${Deno.env.get("PATH")}` },
    });
    const show = (name: string) => k.json<Instance>("instance", "show", name);
    try {
      await k.restart();
      for (const m of ["vkaos", "web"]) {
        assert.equal((await k.aq("module", "import", `${OUT}/${m}`)).code, 0);
      }
      await k.json("vmimage", "create", "web", "--modules", "web");
      await k.json("vmimage", "create", "hmp", "--modules", "web");
      await k.json("vmimage", "create", "bad", "--modules", "web");

      // deploy: web-2 cannot start (a file where its runtime directory goes); web-1 can.
      await Deno.mkdir(`${k.stateDir}/instances`, { recursive: true });
      await Deno.writeTextFile(`${k.stateDir}/instances/web-2`, "in the way\n");
      const d = await k.aq("deploy", "web", "--count", "2", "--json");
      assert.equal(d.code, 1, d.stderr);
      const deployed = JSON.parse(d.stdout) as DeployedInstance[];
      assert.deepEqual(deployed.map((i) => [i.name, i.outcome]), [
        ["web-1", "started"],
        ["web-2", "failed"],
      ]);
      assert.match(deployed[1].reason!, /File exists|Not a directory/);
      assert.match(d.stderr, /^Error: web-2 failed: .*(File exists|Not a directory)/m);
      assert.doesNotMatch(d.stderr, /web-1 failed/);
      assert.equal((await show("web-2")).state, "failed");
      await Deno.remove(`${k.stateDir}/instances/web-2`);

      // A QEMU that exits at once: its own words in the answer, no wait for a QMP socket.
      const b = await k.aq("deploy", "bad", "--json");
      assert.equal(b.code, 1, b.stderr);
      const [bad] = JSON.parse(b.stdout) as DeployedInstance[];
      assert.equal(bad.outcome, "failed");
      assert.match(bad.reason!, /QEMU refused to start: qemu-system-x86_64: -bad: invalid option/);
      const badShown = await show("bad-1");
      assert.equal(badShown.state, "failed");
      assert.equal(badShown.pid, null);
      assert.match(k.log, /bad-1: argv: \[/); // the hint's "the argv is in the kattach log"
      assert.equal(bad.qmpStatus, undefined);
      assert.equal(deployed[0].qmpStatus, "running");

      // A QEMU that answers with the human monitor instead of QMP: killed, instance failed.
      const h = await k.aq("deploy", "hmp", "--wait");
      assert.equal(h.code, 1, h.stderr);
      assert.match(h.stderr, /^Error: hmp-1 failed: .*first QMP exchange failed/m);
      const hmp = await show("hmp-1");
      assert.equal(hmp.state, "failed");
      assert.match(hmp.lastExit ?? "", /QEMU started but its first QMP exchange failed/);
      const hmpPid = Number(await Deno.readTextFile(`${k.stateDir}/instances/hmp-1/qemu.pid`));
      await waitFor(() => !alive(hmpPid), () => `the hmp-1 QEMU (pid ${hmpPid}) to be gone`);

      // restart policy always: a guest that powers itself off (ACPI) comes back.
      await waitFor(
        async () => (await show("web-1")).state === "running",
        async () => `web-1 running: ${JSON.stringify(await show("web-1"))}`,
        WAIT,
      );
      await k.json("instance", "set", "web-1", "--restart-policy", "always");
      const before = (await show("web-1")).pid!;
      await k.json("qmp", "web-1", "system_powerdown");
      await waitFor(
        async () => {
          const i = await show("web-1");
          return i.state === "running" && i.restarts === 1 && i.pid !== before;
        },
        async () => `web-1 restarted after powering off: ${JSON.stringify(await show("web-1"))}`,
        WAIT,
      );
      assert.equal(alive(before), false);
      assert.match(k.log, /web-1: the guest powered off; restart in 1000 ms/);

      // autostart after a reboot: kattach and QEMU gone, the runtime directory empty.
      await k.json("instance", "set", "web-1", "--autostart", "yes");
      await k.stop("SIGKILL");
      await killGuests(k.stateDir);
      await waitFor(() => !alive(before), () => "the old QEMU gone");
      await Deno.remove(`${k.stateDir}/instances`, { recursive: true });
      await Deno.remove(`${k.stateDir}/run`, { recursive: true });
      await k.restart();
      await waitFor(
        async () => (await show("web-1")).state === "running",
        async () => `web-1 autostarted: ${JSON.stringify(await show("web-1"))}\n${k.log}`,
        WAIT,
      );
      const after = (await show("web-1")).pid!;
      assert.ok(alive(after));
      assert.equal((await show("web-2")).state, "failed"); // no autostart: left as it was
    } finally {
      await k.dispose();
      await Deno.remove(bin, { recursive: true });
    }
  },
});

Deno.test("instance del: when its files cannot be removed, it says so instead of 'nothing changed'", async () => {
  await buildFixtures();
  const k = await TestKattach.start();
  const stuck = `${k.stateDir}/instances/web-1/stuck`;
  try {
    for (const m of ["vkaos", "web"]) {
      assert.equal((await k.aq("module", "import", `${OUT}/${m}`)).code, 0);
    }
    await k.json("vmimage", "create", "web", "--modules", "web");
    await k.json("deploy", "web", "--no-start");
    await Deno.mkdir(`${k.stateDir}/instances/web-1`, { recursive: true });
    await Deno.writeTextFile(stuck, "immutable\n");
    const chattr = await run(["chattr", "+i", stuck]); // even root cannot remove it now
    assert.equal(chattr.code, 0, chattr.stderr);
    const r = await k.aq("instance", "del", "web-1");
    assert.equal(r.code, 1, r.stderr);
    assert.match(
      r.stderr,
      new RegExp(
        `^Error: Deleted web-1, but its files under ${k.stateDir}/instances/web-1 could not be removed`,
        "m",
      ),
    );
    assert.doesNotMatch(r.stderr, /nothing was changed/);
    assert.equal((await k.aq("instance", "show", "web-1")).code, 1); // the record is gone
  } finally {
    await run(["chattr", "-i", stuck]);
    await k.dispose();
  }
});
