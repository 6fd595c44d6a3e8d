/**
 * App Modules that manage themselves: the guest agent (docs/guest.md) and the module commands and
 * configuration changes that go through it (docs/modules.md), against real QEMU guests under a
 * hosted kattach. The busybox `web` fixture first: `config-group set` reloads it in place (same
 * QEMU pid, same guest boot), `web stats` / `web logs` read the guest, `instance stats` shows the
 * guest's own figures, and a paused (silent) guest only costs its own request's deadline.
 */
import assert from "node:assert/strict";
import type { ConfigApplyOutcome, GuestStats, Instance, ModuleRunResult } from "../ipc/mod.ts";
import { buildFixtures, FIXTURES_OUT, TestKattach } from "./_harness.ts";

type SetResult = { values: Record<string, unknown>; applied?: ConfigApplyOutcome[] };

async function ok(k: TestKattach, ...args: string[]): Promise<string> {
  const r = await k.aq(...args);
  assert.equal(r.code, 0, `aq ${args.join(" ")}: ${r.stderr}`);
  return r.stdout;
}

async function page(port: number): Promise<string> {
  const res = await fetch(`http://127.0.0.1:${port}/`);
  return await res.text();
}

Deno.test({
  name: "modules: web reloads in place through the guest agent; stats, logs, guest figures",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    await buildFixtures();
    const k = await TestKattach.start();
    try {
      await ok(k, "module", "import", `${FIXTURES_OUT}/vkaos`);
      await ok(k, "module", "import", `${FIXTURES_OUT}/web`);
      await ok(k, "config-group", "add", "web", "site", "title=First title");
      await ok(k, "vmimage", "create", "web", "--modules", "web", "--config-groups", "site");
      await ok(k, "deploy", "web", "--wait");
      const before = await k.json<Instance>("instance", "show", "web-1");
      assert.equal(before.state, "running");
      const port = before.forwards!.find((f) => f.guestPort === 80)!.hostPort;
      assert.match(await page(port), /<h1>First title<\/h1>/);
      const stats1 = await k.json<GuestStats>("instance", "stats", "web-1");
      assert.ok(stats1.guest, "the guest agent answers sysinfo");
      assert.ok(stats1.guest.memTotalBytes > 100 * 1024 * 1024);
      assert.ok(stats1.guest.disks.some((d) => d.mount === "/mnt/modules/web"));

      // config-group set: applied to the running instance by reload, not restart
      const set = await k.json<SetResult>("config-group", "set", "site", "title=Second & <b>");
      assert.deepEqual(set.applied?.map((a) => [a.instance, a.mode, a.ok]), [
        ["web-1", "reload", true],
      ]);
      assert.match(await page(port), /<h1>Second &amp; &lt;b&gt;<\/h1>/);
      const after = await k.json<Instance>("instance", "show", "web-1");
      assert.equal(after.pid, before.pid, "same QEMU process");
      const stats2 = await k.json<GuestStats>("instance", "stats", "web-1");
      assert.ok(stats2.guest!.uptimeSeconds > stats1.guest.uptimeSeconds, "same guest boot");
      const human = await ok(k, "config-group", "set", "site", "greeting=welcome");
      assert.match(human, /web-1\s+reload\s+ok\s+reloaded in \d+ ms/);
      assert.match(await page(port), /Welcome to instance web-1/);

      // --no-apply stores only
      const stored = await k.json<SetResult>(
        "config-group",
        "set",
        "site",
        "title=Stored only",
        "--no-apply",
      );
      assert.equal(stored.applied, undefined);
      assert.equal(stored.values.title, "Stored only");
      assert.match(await page(port), /<h1>Second &amp; &lt;b&gt;<\/h1>/);

      // module commands from climod.aq, through the agent
      const stats = await k.json<ModuleRunResult>("web", "stats", "web-1");
      assert.equal(stats.stats?.port, "80");
      assert.equal(stats.stats?.title, "Second & <b>");
      assert.ok(Number(stats.stats?.page_bytes) > 100);
      assert.match(await ok(k, "web", "stats", "web-1"), /^FIGURE\s+VALUE\n(.*\n)*title\s+Second/);
      const logs = await k.json<ModuleRunResult>("web", "logs", "web-1", "--lines", "5");
      assert.ok(logs.lines!.includes("web: ready on port 80"), logs.lines!.join("\n"));
      assert.ok(logs.lines!.length <= 5);
      const bad = await k.aq("web", "logs", "web-1", "--lines", "0");
      assert.equal(bad.code, 2, bad.stderr);

      // a silent guest (vCPUs paused): its requests end at their deadline, kattach goes on
      await ok(k, "instance", "pause", "web-1");
      const t0 = Date.now();
      const silent = await k.json<GuestStats>("instance", "stats", "web-1");
      assert.equal(silent.guest, null, "no guest figures from a paused guest");
      assert.equal((await k.json<Instance[]>("instance", "list")).length, 1);
      const elapsed = Date.now() - t0;
      await ok(k, "instance", "resume", "web-1");
      // the late reply to the timed-out request is dropped; the next one is answered
      const again = await k.json<ModuleRunResult>("web", "stats", "web-1");
      assert.equal(again.stats?.title, "Second & <b>");
      console.log(`paused guest: instance stats answered in ${elapsed} ms (agent deadline 3 s)`);
    } finally {
      await k.dispose();
    }
  },
});
