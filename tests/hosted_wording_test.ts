/**
 * A hosted kattach names what it has: its state directory, where the appliance has its data
 * partition (`system status`, `storage list`, `deploy`, `instance show`, the log).
 */
import assert from "node:assert/strict";
import type { Instance, SystemStatus } from "../ipc/mod.ts";
import { buildFixtures, FIXTURES_OUT, TestKattach } from "./_harness.ts";

Deno.test("hosted mode says 'state directory' where the appliance says 'data partition'", async () => {
  await buildFixtures();
  const k = await TestKattach.start();
  try {
    const home = `the state directory ${k.stateDir}`;
    const notice = `No guest storage: instances live in ${home} (see \`storage list\`, then ` +
      "`storage init DISK`)";
    const status = await k.json<SystemStatus>("system", "status");
    assert.equal(status.mode, "hosted");
    assert.equal(status.storage?.notice, notice);
    const said: string[] = [];
    const look = async (...args: string[]) => {
      const r = await k.aq(...args);
      assert.equal(r.code, 0, `aq ${args.join(" ")}: ${r.stderr}`);
      said.push(r.stdout + r.stderr);
      return r.stdout + r.stderr;
    };
    assert.ok((await look("system", "status")).includes(notice));
    assert.ok((await look("storage", "list")).includes(notice));
    for (const m of ["vkaos", "web"]) await look("module", "import", `${FIXTURES_OUT}/${m}`);
    await look("vmimage", "create", "web", "--modules", "web");
    assert.ok((await look("deploy", "web", "--no-start")).includes(notice));
    assert.match(await look("instance", "show", "web-1"), new RegExp(`^Storage: +${home}$`, "m"));
    const shown = await k.json<Instance>("instance", "show", "web-1");
    assert.deepEqual([shown.storage, shown.storagePlace], [null, home]);
    assert.ok((await look("system", "log")).includes(`deploy: web × 1 on ${home}: web-1`));
    for (const text of said) assert.doesNotMatch(text, /data partition/i);
  } finally {
    await k.dispose();
  }
});
