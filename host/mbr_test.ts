import { deepStrictEqual as assertEquals, ok as assert } from "node:assert/strict";
import { growMbrEntry } from "./mbr.ts";

/** Sector 0 with MBR entries [type, start, sectors]. */
function mbr(entries: [number, number, number][], signature = true): Uint8Array {
  const s = new Uint8Array(512);
  const v = new DataView(s.buffer);
  entries.forEach(([type, start, sectors], i) => {
    const off = 446 + 16 * i;
    s[off + 4] = type;
    v.setUint32(off + 8, start, true);
    v.setUint32(off + 12, sectors, true);
  });
  if (signature) s.set([0x55, 0xaa], 510);
  return s;
}

/** The layout scripts/build-image writes: ISO, ESP, KAOSDATA last. */
const IMAGE = mbr([[0xcd, 64, 18660], [0xef, 18724, 2320], [0x83, 21044, 65536]]);

Deno.test("growMbrEntry grows the last partition to the end of the disk, nothing else", () => {
  const g = growMbrEntry(IMAGE, { number: 3, diskSectors: 16 * 2 ** 21 }); // 16 GiB
  assert(g);
  assertEquals([g.start, g.oldSectors, g.newSectors], [21044, 65536, 16 * 2 ** 21 - 21044]);
  const v = new DataView(g.sector.buffer);
  assertEquals(v.getUint32(446 + 32 + 12, true), 16 * 2 ** 21 - 21044);
  const changed = [...g.sector].flatMap((b, i) => b === IMAGE[i] ? [] : [i]);
  assert(changed.every((i) => i >= 446 + 32 + 12 && i < 446 + 32 + 16), `${changed}`);
  assertEquals(IMAGE[446 + 32 + 12], 0x00); // the input is not modified
});

Deno.test("growMbrEntry stays within the 2 TiB an MBR can describe", () => {
  const g = growMbrEntry(IMAGE, { number: 3, diskSectors: 2 ** 33 });
  assertEquals(g?.newSectors, 0xffff_ffff);
});

Deno.test("growMbrEntry leaves alone what it must not or need not change", () => {
  const cases: [string, Uint8Array, number, number][] = [
    ["already at the end", IMAGE, 3, 21044 + 65536],
    ["less than 1 MiB to gain", IMAGE, 3, 21044 + 65536 + 2047],
    ["not the last partition", IMAGE, 2, 2 ** 24],
    ["an empty entry", IMAGE, 4, 2 ** 24],
    ["no MBR signature", mbr([[0x83, 2048, 4096]], false), 1, 2 ** 24],
    ["a GPT disk", mbr([[0xee, 1, 2 ** 24 - 1]]), 1, 2 ** 24],
    ["a number outside 1-4", IMAGE, 5, 2 ** 24],
  ];
  for (const [what, sector, number, diskSectors] of cases) {
    assertEquals(growMbrEntry(sector, { number, diskSectors }), null, what);
  }
});
