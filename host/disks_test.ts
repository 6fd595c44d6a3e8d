/** Tests of disk facts: superblocks of real filesystems made by mke2fs, df output. */
import { deepStrictEqual as assertEquals } from "node:assert/strict";
import { makeExt4, parseDf, parseSuperblock, readSuperblock } from "./disks.ts";
import { runCommand } from "./run.ts";

Deno.test("makeExt4 wipes an old partition table and readSuperblock finds its label and UUID", async () => {
  const dir = await Deno.makeTempDir({ prefix: "kaos-disks-" });
  try {
    const img = `${dir}/disk.img`;
    const f = await Deno.open(img, { write: true, create: true });
    await f.truncate(32 * 1024 * 1024);
    await f.seek(510, Deno.SeekMode.Start);
    await f.write(new Uint8Array([0x55, 0xaa])); // an MBR signature
    f.close();
    assertEquals((await readSuperblock(img))?.partitionTable, true);
    const uuid = "0a4b5300-1111-4222-8333-444455556666";
    await makeExt4(img, { label: "KAOS-fast", uuid, run: runCommand });
    assertEquals(await readSuperblock(img), {
      fstype: "ext4",
      label: "KAOS-fast",
      uuid,
      partitionTable: false,
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("parseSuperblock: an ISO 9660 volume and an empty disk", () => {
  const iso = new Uint8Array(0x8048);
  iso.set(new TextEncoder().encode("\x01CD001"), 0x8000);
  iso.set(new TextEncoder().encode("KAOS_0.1.0                      "), 0x8028);
  assertEquals(parseSuperblock(iso), {
    fstype: "iso9660",
    label: "KAOS_0.1.0",
    uuid: "",
    partitionTable: false,
  });
  assertEquals(parseSuperblock(new Uint8Array(4096)), {
    fstype: null,
    label: "",
    uuid: "",
    partitionTable: false,
  });
});

Deno.test("parseDf reads busybox's and coreutils' df -Pk", () => {
  const coreutils = "Filesystem     1024-blocks   Used Available Capacity Mounted on\n" +
    "/dev/loop5          150000   2000    140000       2% /x\n";
  assertEquals(parseDf(coreutils), { freeBytes: 140000 * 1024, totalBytes: 150000 * 1024 });
  const busybox = "Filesystem           1024-blocks    Used Available Capacity Mounted on\n" +
    "/dev/vdb               1000        10       990   1% /var/lib/kaos/storage/a\n";
  assertEquals(parseDf(busybox), { freeBytes: 990 * 1024, totalBytes: 1000 * 1024 });
});
