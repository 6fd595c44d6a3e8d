/**
 * `deploy --wait` of a module whose readiness never comes, on real QEMU (TCG) under a hosted
 * kattach: the command exits 1 and names the instance's real state and its last exit (the
 * readiness failure), not "it is starting" (the answer used to come before the end was recorded).
 * And a deploy of two whose second start fails before its QEMU is spawned: the first starts.
 */
import assert from "node:assert/strict";
import type { DeployedInstance } from "../ipc/mod.ts";
import { buildFixtures, FIXTURES_OUT, moduleCopy, TestKattach } from "./_harness.ts";

Deno.test({
  name: "deploy --wait: a readiness failure names the state and the last exit",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    await buildFixtures();
    const dir = await Deno.makeTempDir({ prefix: "kaos-deploy-not-ready-" });
    const k = await TestKattach.start();
    try {
      const web = await moduleCopy("web", dir, (a) => {
        a.readiness = { type: "serial", marker: "this line never comes" };
        a.readinessTimeoutSeconds = 1;
      });
      for (const m of [`${FIXTURES_OUT}/vkaos`, web]) {
        const r = await k.aq("module", "import", m);
        assert.equal(r.code, 0, `module import ${m}: ${r.stdout}${r.stderr}`);
      }
      await k.json("vmimage", "create", "web", "--modules", "web");
      const r = await k.aq("deploy", "web", "--wait");
      assert.equal(r.code, 1, `deploy: ${r.stdout}${r.stderr}`);
      const line = r.stderr.split("\n").find((l) => l.includes("web-1 failed"));
      assert.ok(line, r.stderr);
      assert.match(
        line,
        /^Error: web-1 failed: never became ready \(it is failed; last exit: not ready: web: not ready after 1000 ms: serial: no line with "this line never comes" yet; restarting in \d+ s \(on-failure\)\)$/,
      );
      // The record says the same once asked.
      const inst = await k.json<DeployedInstance>("instance", "show", "web-1");
      assert.match(inst.lastExit ?? "", /^not ready: web: not ready after 1000 ms/);
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
    } finally {
      await k.dispose();
      await Deno.remove(dir, { recursive: true }).catch(() => {});
    }
  },
});
