/**
 * `deploy --wait` of a module whose readiness never comes, on real QEMU (TCG) under a hosted
 * kattach: the command exits 1 and names the instance's real state and its last exit (the
 * readiness failure), not "it is starting" (the answer used to come before the end was recorded).
 * And a deploy of two whose second start fails before its QEMU is spawned: the first starts.
 * The deadline counts the guest's CPU time (kattach/readiness_deadline.ts): a guest whose QEMU
 * is stopped (SIGSTOP) longer than its deadline is still ready once it runs again; one stopped
 * for good fails at the wall-time ceiling.
 */
import assert from "node:assert/strict";
import type { DeployedInstance } from "../ipc/mod.ts";
import { buildFixtures, FIXTURES_OUT, moduleCopy, TestKattach } from "./_harness.ts";

/**
 * Runs `fn` against a hosted kattach with vKaOS, a copy of `web` with its appmgr.aq edited, and
 * the VM image `web`; disposes of all of it (guests included) afterwards.
 */
async function withWeb(
  edit: Parameters<typeof moduleCopy>[2],
  fn: (k: TestKattach) => Promise<void>,
): Promise<void> {
  await buildFixtures();
  const dir = await Deno.makeTempDir({ prefix: "kaos-deploy-readiness-" });
  const k = await TestKattach.start();
  try {
    const web = await moduleCopy("web", dir, edit);
    for (const m of [`${FIXTURES_OUT}/vkaos`, web]) {
      const r = await k.aq("module", "import", m);
      assert.equal(r.code, 0, `module import ${m}: ${r.stdout}${r.stderr}`);
    }
    await k.json("vmimage", "create", "web", "--modules", "web");
    await fn(k);
  } finally {
    await k.dispose();
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
}

/**
 * Waits until kattach has attached the QEMU of `name` that it starts after the log's first `from`
 * characters (its first QMP exchange needs a running QEMU; its readiness wait begins there) and
 * stops it (SIGSTOP) then, while the guest boots.
 */
async function holdWhenAttached(k: TestKattach, name: string, from: number): Promise<number> {
  const started = new RegExp(`supervisor: started ${name} \\(pid (\\d+);`);
  const until = Date.now() + 120_000;
  while (Date.now() < until) {
    const pid = Number(k.log.slice(from).match(started)?.[1]);
    if (pid > 1) {
      Deno.kill(pid, "SIGSTOP");
      return pid;
    }
    await new Promise((r) => setTimeout(r, 5));
  }
  throw new Error(`kattach did not start ${name} within 120 s:\n${k.log.slice(from)}`);
}

/** Lets a stopped QEMU run again (SIGCONT); one already gone is no error. */
function resume(pid: number): void {
  try {
    Deno.kill(pid, "SIGCONT");
  } catch { /* gone */ }
}

Deno.test({
  name: "deploy --wait: a readiness failure names the state and the last exit",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: () =>
    withWeb((a) => {
      a.readiness = { type: "serial", marker: "this line never comes" };
      a.readinessTimeoutSeconds = 1;
    }, async (k) => {
      const r = await k.aq("deploy", "web", "--wait");
      assert.equal(r.code, 1, `deploy: ${r.stdout}${r.stderr}`);
      const line = r.stderr.split("\n").find((l) => l.includes("web-1 failed"));
      assert.ok(line, r.stderr);
      // The guest's second of CPU time, or (a host so busy that the guest got less than a tenth
      // of a CPU: CI with other work) the 10 s wall-time ceiling, saying what it used.
      const notReady =
        /not ready: web: not ready after (1(\.\d)? s of its CPU time \([\d.]+ m?s\)|1\d(\.\d)? s, in which it used \d+ ms of CPU time \(the deadline is 1 s of CPU time or 10 s\))/;
      assert.match(
        line,
        new RegExp(
          `^Error: web-1 failed: never became ready \\(it is failed; last exit: ${notReady.source}: serial: no line with "this line never comes" yet; restarting in \\d+ s \\(on-failure\\)\\)$`,
        ),
      );
      // The record says the same once asked.
      const inst = await k.json<DeployedInstance>("instance", "show", "web-1");
      assert.match(inst.lastExit ?? "", new RegExp(`^${notReady.source}`));
      await k.aq("instance", "kill", "web-1");

      // A guest that uses no more CPU (its QEMU stopped once attached) still fails, at the
      // wall-time ceiling: 10× the deadline. (Not restarted: its health is read after the end.)
      await k.json("instance", "set", "web-1", "--restart-policy", "never");
      const from = k.log.length;
      const starting = k.aq("instance", "start", "web-1", "--wait");
      const held = await holdWhenAttached(k, "web-1", from);
      try {
        const stuck = await starting;
        assert.equal(stuck.code, 1, `instance start: ${stuck.stdout}${stuck.stderr}`);
        assert.match(
          stuck.stderr,
          /not ready: web: not ready after 1\d(\.\d)? s, in which it used \d+ ms of CPU time \(the deadline is 1 s of CPU time or 10 s\): serial: no line/,
        );
        // vKaOS's own wait (120 s, so a 20 min ceiling) ended with web's.
        const health = (await k.json<DeployedInstance>("instance", "show", "web-1")).health;
        assert.deepEqual(
          health?.find((h) => h.module === "vkaos")?.detail,
          "no longer waited for: web was not ready",
        );
      } finally {
        resume(held);
      }
      await k.aq("instance", "kill", "web-1");

      // A deploy's starts spawn their QEMUs together once all have their files (the launch
      // gate): one whose files cannot be made (web-3's directory is taken by a file) fails on
      // its own and is not waited for; web-2 starts.
      await Deno.mkdir(`${k.stateDir}/instances`, { recursive: true });
      await Deno.writeTextFile(`${k.stateDir}/instances/web-3`, "in the way\n");
      const two = await k.aq("deploy", "web", "--count", "2");
      assert.equal(two.code, 1, `deploy --count 2: ${two.stdout}${two.stderr}`);
      assert.match(two.stdout, /^web-2 +started +(starting|running) /m, two.stdout);
      assert.match(two.stdout, /^web-3 +failed +failed /m, two.stdout);
      assert.match(two.stderr, /^Error: web-3 failed: .*web-3/m, two.stderr);
      const web2 = await k.json<DeployedInstance>("instance", "show", "web-2");
      assert.ok(web2.pid && web2.pid > 1, JSON.stringify(web2));
      await k.aq("instance", "kill", "web-2");
    }),
});

Deno.test({
  name: "deploy --wait: a guest starved longer than its deadline is ready once it runs, not killed",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: () =>
    withWeb((a) => {
      a.readinessTimeoutSeconds = 4;
    }, async (k) => {
      const from = k.log.length;
      const deploying = k.aq("deploy", "web", "--wait");
      // Starved: its QEMU gets no CPU for 8 s, twice its deadline (a wall-time deadline killed it
      // at 4 s), well within the 40 s ceiling.
      const pid = await holdWhenAttached(k, "web-1", from);
      let held = true;
      try {
        await new Promise((r) => setTimeout(r, 8_000));
        const during = await k.json<DeployedInstance>("instance", "show", "web-1");
        assert.equal(during.state, "starting", JSON.stringify(during));
        assert.equal(during.pid, pid);
        resume(pid);
        held = false;
        const r = await deploying;
        assert.equal(r.code, 0, `deploy: ${r.stdout}${r.stderr}`);
        assert.match(r.stdout, /^web-1 +ready +running /m, r.stdout);
      } finally {
        if (held) resume(pid);
      }
      const inst = await k.json<DeployedInstance>("instance", "show", "web-1");
      assert.equal(inst.state, "running");
      assert.equal(inst.pid, pid, "the same QEMU, not a restarted one");
      assert.equal(inst.restarts, 0);
      // The module's name once in its detail, though vKaOS prefixes what `web` printed with it.
      assert.deepEqual(inst.health?.map((h) => [h.module, h.status, h.detail]), [
        ["vkaos", "ready", "serial: KAOS-GUEST: ready web-1"],
        ["web", "ready", "serial: web: ready on port 80"],
      ]);
      await k.aq("instance", "kill", "web-1");
    }),
});
