import { deepStrictEqual as assertEquals, ok as assert } from "node:assert/strict";
import { grantGroup, grantTraversal, parsePasswd, spawnDetached } from "./guest_user.ts";

Deno.test("parsePasswd finds a user's ids", () => {
  const text =
    "root:x:0:0:root:/root:/bin/sh\nkaos-qemu:x:995:994::/nonexistent:/usr/sbin/nologin\n";
  assertEquals(parsePasswd(text, "kaos-qemu"), { uid: 995, gid: 994 });
  assertEquals(parsePasswd(text, "kaos"), null);
});

Deno.test("grants: o+x on the directories above, group read or traversal, nothing more", async () => {
  const top = await Deno.makeTempDir({ prefix: "kaos_grant_" });
  try {
    await Deno.mkdir(`${top}/a/b/state`, { recursive: true });
    await Deno.chmod(`${top}/a`, 0o700);
    await Deno.chmod(`${top}/a/b`, 0o750);
    const changed = await grantTraversal(`${top}/a/b/state`);
    assert(changed.includes(`${top}/a`) && changed.includes(`${top}/a/b`), changed.join());
    assertEquals((await Deno.stat(`${top}/a`)).mode! & 0o777, 0o701);
    assertEquals((await Deno.stat(`${top}/a/b`)).mode! & 0o777, 0o751);
    assertEquals(await grantTraversal(`${top}/a/b/state`), []); // a second run changes nothing
    await Deno.writeTextFile(`${top}/a/b/state/img`, "x", { mode: 0o600 });
    const gid = Deno.gid()!;
    await grantGroup(`${top}/a/b/state/img`, gid);
    assertEquals((await Deno.stat(`${top}/a/b/state/img`)).mode! & 0o777, 0o640);
    await Deno.chmod(`${top}/a/b/state`, 0o700);
    await grantGroup(`${top}/a/b/state`, gid);
    assertEquals((await Deno.stat(`${top}/a/b/state`)).mode! & 0o777, 0o710);
  } finally {
    await Deno.remove(top, { recursive: true });
  }
});

Deno.test("spawnDetached: the pid of a background process that outlives its starter", async () => {
  const dir = await Deno.makeTempDir({ prefix: "kaos_spawn_" });
  try {
    const pid = await spawnDetached(["sleep", "30"], { cwd: dir, logFile: `${dir}/out.log` });
    let stat = "";
    for (let i = 0; i < 250 && !stat.includes("(sleep)"); i++) { // setsid execs it: wait for that
      stat = await Deno.readTextFile(`/proc/${pid}/stat`);
      if (!stat.includes("(sleep)")) await new Promise((r) => setTimeout(r, 20));
    }
    assert(stat.includes("(sleep)"), `the pid is sleep's own: ${stat}`);
    const sid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[3]);
    assertEquals(sid, pid, "a session of its own: a Ctrl-C to kattach spares it");
    Deno.kill(pid, "SIGKILL");
    const failed = await spawnDetached(["sh", "-c", "echo oops >&2; exit 3"], {
      cwd: dir,
      logFile: `${dir}/out.log`,
    });
    assert(failed > 0);
    // Its output went to the log, not to us.
    for (let i = 0; i < 100 && !(await Deno.readTextFile(`${dir}/out.log`)).includes("oops"); i++) {
      await new Promise((r) => setTimeout(r, 20));
    }
    assert((await Deno.readTextFile(`${dir}/out.log`)).includes("oops"));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
