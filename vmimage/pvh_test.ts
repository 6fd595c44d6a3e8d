import { deepStrictEqual as assertEquals, ok as assert } from "node:assert/strict";
import { gzipSync } from "node:zlib";
import { hasPvhNote, pvhElfFromBzImage } from "./pvh.ts";

/** A minimal ELF64 with one PT_NOTE segment holding one note (name, type). */
function elfWithNote(name: string, type: number): Uint8Array {
  const nameBytes = new TextEncoder().encode(`${name}\0`);
  const nameLen = (nameBytes.length + 3) & ~3;
  const note = new Uint8Array(12 + nameLen + 4);
  const nv = new DataView(note.buffer);
  nv.setUint32(0, nameBytes.length, true);
  nv.setUint32(4, 4, true); // descsz: a 32-bit entry address
  nv.setUint32(8, type, true);
  note.set(nameBytes, 12);
  nv.setUint32(12 + nameLen, 0x1000000, true);
  const elf = new Uint8Array(64 + 56 + note.length);
  elf.set([0x7f, 0x45, 0x4c, 0x46, 2, 1, 1]);
  const v = new DataView(elf.buffer);
  v.setBigUint64(0x20, 64n, true); // e_phoff
  v.setUint16(0x36, 56, true); // e_phentsize
  v.setUint16(0x38, 1, true); // e_phnum
  v.setUint32(64, 4, true); // PT_NOTE
  v.setBigUint64(64 + 8, 120n, true); // p_offset
  v.setBigUint64(64 + 32, BigInt(note.length), true); // p_filesz
  elf.set(note, 120);
  return elf;
}

/** A bzImage-shaped file: boot header (protocol 2.15), setup sectors, then the payload. */
function bzImage(payload: Uint8Array, version = 0x020f): Uint8Array {
  const setupSects = 2;
  const bz = new Uint8Array((setupSects + 1) * 512 + 100 + payload.length);
  const v = new DataView(bz.buffer);
  bz[0x1f1] = setupSects;
  bz.set(new TextEncoder().encode("HdrS"), 0x202);
  v.setUint16(0x206, version, true);
  v.setUint32(0x248, 100, true); // payload_offset
  v.setUint32(0x24c, payload.length, true); // payload_length
  bz.set(payload, (setupSects + 1) * 512 + 100);
  return bz;
}

Deno.test("pvhElfFromBzImage inflates a gzip payload that has Xen's PHYS32_ENTRY note", () => {
  const elf = elfWithNote("Xen", 18);
  assert(hasPvhNote(elf));
  assertEquals(pvhElfFromBzImage(bzImage(gzipSync(elf))), elf);
});

Deno.test("pvhElfFromBzImage says null for what it cannot boot through PVH", () => {
  const gz = gzipSync(elfWithNote("Xen", 18));
  // No PVH note, or another note.
  assertEquals(pvhElfFromBzImage(bzImage(gzipSync(elfWithNote("Xen", 17)))), null);
  assertEquals(pvhElfFromBzImage(bzImage(gzipSync(elfWithNote("GNU", 18)))), null);
  // Another compression (xz's magic), a damaged gzip stream, a payload past the end.
  const xz = new Uint8Array([0xfd, 0x37, 0x7a, 0x58, 0x5a, 0, ...gz.subarray(6)]);
  assertEquals(pvhElfFromBzImage(bzImage(xz)), null);
  const damaged = gz.slice();
  damaged.fill(0xff, 20, 40);
  assertEquals(pvhElfFromBzImage(bzImage(damaged)), null);
  assertEquals(pvhElfFromBzImage(bzImage(gz).subarray(0, 1600)), null);
  // Not a bzImage, or a boot protocol without payload fields.
  assertEquals(pvhElfFromBzImage(new TextEncoder().encode("a kernel")), null);
  assertEquals(pvhElfFromBzImage(bzImage(gz, 0x0207)), null);
  // Not an ELF at all inside.
  assertEquals(pvhElfFromBzImage(bzImage(gzipSync(new Uint8Array(200)))), null);
});
