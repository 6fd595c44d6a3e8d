/** Tests of disk facts: superblocks of real filesystems made by mke2fs, df output. */
import { deepStrictEqual as assertEquals } from "node:assert/strict";
import { makeExt4, parseDf, parseSuperblock, readDisks, readSuperblock } from "./disks.ts";
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

Deno.test("readDisks names a virtio disk (no model, vendor 0x1af4) and keeps a SCSI disk's model", async () => {
  const dir = await Deno.makeTempDir({ prefix: "kaos-disks-" });
  try {
    const sys = `${dir}/sys`;
    const dev = `${dir}/dev`;
    const files: Record<string, string> = {
      "vda/size": "4194304\n",
      "vda/device/vendor": "0x1af4\n",
      "vda/device/modalias": "virtio:d00000002v00001AF4\n",
      "sda/size": "2097152\n",
      "sda/device/vendor": "QEMU    \n",
      "sda/device/model": "QEMU HARDDISK   \n",
    };
    for (const [path, text] of Object.entries(files)) {
      await Deno.mkdir(`${sys}/${path.replace(/\/[^/]+$/, "")}`, { recursive: true });
      await Deno.writeTextFile(`${sys}/${path}`, text);
    }
    await Deno.mkdir(dev);
    for (const d of ["vda", "sda"]) await Deno.writeFile(`${dev}/${d}`, new Uint8Array(65536));
    const disks = await readDisks({ sysBlock: sys, devDir: dev });
    assertEquals(disks.map((d) => [d.name, d.model, d.sizeBytes]), [
      ["sda", "QEMU QEMU HARDDISK", 1024 ** 3],
      ["vda", "virtio disk", 2 * 1024 ** 3],
    ]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
