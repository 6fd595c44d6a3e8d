/**
 * Hosted mode as the README's Quick start runs it: `kattach --hosted --state .state`, a state
 * directory given relative to the current directory. A real guest (TCG) is deployed on it: its
 * overlay names the module image by an absolute path, so QEMU starts.
 */
import assert from "node:assert/strict";
import { relative } from "node:path";
import type { Instance } from "../ipc/mod.ts";
import { buildFixtures, FIXTURES_OUT, TestKattach } from "./_harness.ts";

Deno.test({
  name: "hosted: a relative --state directory deploys and starts a guest",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    await buildFixtures();
    const dir = await Deno.makeTempDir({ prefix: "kaos-relstate-" });
    const rel = relative(Deno.cwd(), dir);
    assert.ok(!rel.startsWith("/"), `a relative path: ${rel}`);
    const k = await TestKattach.start(rel);
    try {
      for (const m of ["vkaos", "web"]) {
        const r = await k.aq("module", "import", `${FIXTURES_OUT}/${m}`);
        assert.equal(r.code, 0, r.stderr);
      }
      await k.json("vmimage", "create", "web", "--modules", "web");
      const r = await k.aq("deploy", "web", "--json");
      assert.equal(r.code, 0, `deploy: ${r.stdout}${r.stderr}`);
      const [one] = JSON.parse(r.stdout) as (Instance & { outcome: string })[];
      assert.equal(one.outcome, "started", r.stdout);
      const shown = await k.json<Instance>("instance", "show", "web-1");
      assert.ok(["starting", "running"].includes(shown.state), shown.state);
      assert.ok(shown.pid && shown.pid > 1);
      // The overlay's backing file is the module image under the absolute state directory.
      const inst = `${dir}/instances/web-1`;
      const overlay = [...Deno.readDirSync(inst)].find((e) => e.name.endsWith(".qcow2"))!.name;
      const info = await new Deno.Command("qemu-img", {
        args: ["info", "-U", "--output=json", `${inst}/${overlay}`],
        stdout: "piped",
      }).output();
      const backing = JSON.parse(new TextDecoder().decode(info.stdout))["backing-filename"];
      assert.equal(backing, `${dir}/modules/web/web.aqi`);
    } finally {
      await k.dispose();
      await Deno.remove(dir, { recursive: true }).catch(() => {});
    }
  },
});
