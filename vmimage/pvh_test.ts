import { deepStrictEqual as assertEquals, ok as assert } from "node:assert/strict";
import { Buffer } from "node:buffer";
import { gunzipSync, gzipSync } from "node:zlib";
import { bzImage, elfWithNote } from "./_pvh_fixture.ts";
import { bzImagePayload, hasPvhNote, hasPvhNoteAt } from "./pvh.ts";
import { inflatePvhElf } from "./pvh_file.ts";

Deno.test("bzImagePayload finds the gzip payload; hasPvhNote reads Xen's PHYS32_ENTRY note", () => {
  const elf = elfWithNote("Xen", 18);
  const gz = gzipSync(elf);
  const bz = bzImage(gz);
  const at = bzImagePayload(bz.subarray(0, 0x250), bz.length);
  assertEquals(at, { offset: 3 * 512 + 100, length: gz.length });
  assertEquals(gunzipSync(bz.subarray(at!.offset, at!.offset + at!.length)), Buffer.from(elf));
  assert(hasPvhNote(elf));
  // Only the header, the program headers and the notes are read.
  const reads: number[][] = [];
  assert(hasPvhNoteAt((o, l) => (reads.push([o, l]), elf.subarray(o, o + l))));
  assertEquals(reads, [[0, 64], [64, 56], [120, elf.length - 120]]);
});

Deno.test("bzImagePayload and hasPvhNote say no to what cannot boot through PVH", () => {
  const gz = gzipSync(elfWithNote("Xen", 18));
  // No PVH note, or another note; not an ELF; a truncated ELF.
  assert(!hasPvhNote(elfWithNote("Xen", 17)));
  assert(!hasPvhNote(elfWithNote("GNU", 18)));
  assert(!hasPvhNote(new Uint8Array(200)));
  assert(!hasPvhNote(elfWithNote("Xen", 18).subarray(0, 130)));
  // A payload past the end; not a bzImage; a boot protocol without payload fields.
  const bz = bzImage(gz);
  assertEquals(bzImagePayload(bz.subarray(0, 0x250), 1600), null);
  assertEquals(bzImagePayload(bz.subarray(0, 0x200), bz.length), null);
  assertEquals(bzImagePayload(new Uint8Array(0x250), bz.length), null);
  assertEquals(bzImagePayload(bzImage(gz, 0x0207).subarray(0, 0x250), bz.length), null);
});

Deno.test("inflatePvhElf: gzip -dc writes the ELF with the PVH note; anything else writes nothing", async () => {
  const dir = await Deno.makeTempDir({ prefix: "kaos-pvh-" });
  try {
    const elf = elfWithNote("Xen", 18);
    const gz = gzipSync(elf);
    const cases: [string, Uint8Array, boolean][] = [
      ["good", bzImage(gz), true],
      ["no-note", bzImage(gzipSync(elfWithNote("Xen", 17))), false],
      ["damaged", bzImage(gz.slice().fill(0xff, 20, 40)), false],
      ["xz", bzImage(new Uint8Array([0xfd, 0x37, 0x7a, 0x58, 0x5a, 0, ...gz.subarray(6)])), false],
      ["not-elf", bzImage(gzipSync(new Uint8Array(200))), false],
      ["not-bzimage", new TextEncoder().encode("a kernel"), false],
    ];
    for (const [name, bz, found] of cases) {
      await Deno.writeFile(`${dir}/${name}`, bz);
      assertEquals(await inflatePvhElf(`${dir}/${name}`, `${dir}/${name}.pvh`), found, name);
      const left = [...Deno.readDirSync(dir)].map((e) => e.name).filter((n) =>
        n.startsWith(`${name}.`)
      );
      assertEquals(left, found ? [`${name}.pvh`] : [], `${name}: no temporary file is left`);
    }
    assertEquals(await Deno.readFile(`${dir}/good.pvh`), elf);
    assertEquals((await Deno.stat(`${dir}/good.pvh`)).mode! & 0o777, 0o600);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
