/** Synthetic kernels for the PVH tests: a minimal ELF with one note, wrapped as a bzImage. */
/** A minimal ELF64 with one PT_NOTE segment holding one note (name, type). */
export function elfWithNote(name: string, type: number): Uint8Array {
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
export function bzImage(payload: Uint8Array, version = 0x020f): Uint8Array {
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
