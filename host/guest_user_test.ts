import {
  deepStrictEqual as assertEquals,
  match as assertMatch,
  ok as assert,
} from "node:assert/strict";
import { grantDevice, grantGroup, grantTraversal, parsePasswd } from "./guest_user.ts";

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

Deno.test({
  name: "grantDevice: a tun node made 0600 (devtmpfs without udev) opens for the QEMU user after",
  ignore: Deno.uid() !== 0, // mknod, chown and setpriv need root
  async fn() {
    const dir = await Deno.makeTempDir({ prefix: "kaos_grant_dev_" });
    const ids = { uid: 64_911, gid: 64_911 }; // a user of its own: no group grants it anything
    // Whether that user may open the node read-write: access(2) through `test -r/-w` (the
    // kernel's permission check; an actual open of a tun node by a non-root child of Deno
    // takes a minute on the development kernel).
    const opens = async (path: string) =>
      (await new Deno.Command("setpriv", {
        args: [
          ...["--reuid", String(ids.uid), "--regid", String(ids.gid), "--clear-groups"],
          ...["sh", "-c", 'test -r "$0" && test -w "$0"', path],
        ],
        stdin: "null",
        stdout: "null",
        stderr: "null",
      }).output()).success;
    try {
      await Deno.chmod(dir, 0o755);
      const tun = `${dir}/tun`;
      const mk = await new Deno.Command("mknod", { args: ["-m", "0600", tun, "c", "10", "200"] })
        .output();
      assert(mk.success, new TextDecoder().decode(mk.stderr));
      assertEquals(await opens(tun), false, "a 0600 root node must not open before the grant");
      const did = await grantDevice(ids, tun);
      assert(await opens(tun), `the node does not open after the grant (${did})`);
      assertEquals((await Deno.stat(tun)).uid, 0, "the node stays root's");

      // A node open to everyone already (udev's 0666 /dev/net/tun) is left exactly as it is.
      const open = `${dir}/tun-open`;
      await new Deno.Command("mknod", { args: ["-m", "0666", open, "c", "10", "200"] }).output();
      const before = await Deno.stat(open);
      assertMatch(await grantDevice(ids, open), /open to every user already/);
      const after = await Deno.stat(open);
      assertEquals([after.mode, after.uid, after.gid], [before.mode, before.uid, before.gid]);
      assert(await opens(open));
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});
