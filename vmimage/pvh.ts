/**
 * The kernel ELF inside a bzImage, for QEMU's PVH entry (`-M microvm -kernel vmlinux`): a bzImage
 * carries its kernel as a compressed ELF that the guest inflates itself at every boot, which under
 * TCG costs about 0.15 s of CPU (buildroot/vkaos-kernel/README.md). kattach inflates it once per
 * vKaOS image on the host instead and boots the ELF directly when it has the PVH note. Pure: where
 * the payload lies, and whether an ELF read through `readAt` has the note; the inflating itself is
 * the caller's (kattach does it outside its own heap: a 16 MiB ELF passed through JS stayed in
 * kattach's RSS as 35-50 MiB of garbage no collection was due to reclaim).
 */

/** Xen's ELF note type for the 32-bit PVH entry point (XEN_ELFNOTE_PHYS32_ENTRY). */
const PHYS32_ENTRY = 18;

/** Where a bzImage's gzip-compressed kernel ELF lies in the file (bytes). */
export interface BzPayload {
  offset: number;
  length: number;
}

/**
 * Where a bzImage's compressed kernel lies, from its first 0x250 bytes and the file's size; null
 * for a boot protocol before 2.08, not a bzImage, or a payload past the end. Whether it is gzip
 * (the vKaOS kernel's `CONFIG_KERNEL_GZIP`) is left to the inflater, which refuses anything else.
 */
export function bzImagePayload(head: Uint8Array, size: number): BzPayload | null {
  if (head.length < 0x250) return null;
  const view = new DataView(head.buffer, head.byteOffset, head.byteLength);
  const magic = String.fromCharCode(...head.subarray(0x202, 0x206));
  // payload_offset and payload_length exist from boot protocol 2.08 on.
  if (magic !== "HdrS" || view.getUint16(0x206, true) < 0x208) return null;
  const setupSects = head[0x1f1] || 4;
  const offset = (setupSects + 1) * 512 + view.getUint32(0x248, true);
  const length = view.getUint32(0x24c, true);
  if (length < 18 || offset + length > size) return null;
  return { offset, length };
}

/** Reads `length` bytes at `offset` of an ELF (fewer at its end). */
export type ReadAt = (offset: number, length: number) => Uint8Array;

/**
 * True for a 64-bit little-endian ELF with a "Xen" PHYS32_ENTRY note in a PT_NOTE segment. Reads
 * only the header, the program headers and the note segments.
 */
export function hasPvhNoteAt(readAt: ReadAt): boolean {
  const head = readAt(0, 64);
  if (head.length < 64 || head[0] !== 0x7f || head[1] !== 0x45 || head[2] !== 0x4c) return false;
  if (head[3] !== 0x46 || head[4] !== 2 || head[5] !== 1) return false;
  const hv = new DataView(head.buffer, head.byteOffset, head.byteLength);
  const phoff = Number(hv.getBigUint64(0x20, true));
  const phentsize = hv.getUint16(0x36, true);
  const phnum = hv.getUint16(0x38, true);
  if (phentsize < 56) return false;
  const phdrs = readAt(phoff, phnum * phentsize);
  if (phdrs.length < phnum * phentsize) return false;
  const pv = new DataView(phdrs.buffer, phdrs.byteOffset, phdrs.byteLength);
  for (let i = 0; i < phnum; i++) {
    const ph = i * phentsize;
    if (pv.getUint32(ph, true) !== 4) continue; // PT_NOTE
    const size = Number(pv.getBigUint64(ph + 32, true));
    if (size > 1 << 20) return false; // no kernel carries a megabyte of notes
    const notes = readAt(Number(pv.getBigUint64(ph + 8, true)), size);
    if (notes.length < size) return false;
    if (notesHavePvh(notes)) return true;
  }
  return false;
}

/** {@linkcode hasPvhNoteAt} of an ELF in memory. */
export function hasPvhNote(elf: Uint8Array): boolean {
  return hasPvhNoteAt((offset, length) => elf.subarray(offset, offset + length));
}

function notesHavePvh(notes: Uint8Array): boolean {
  const view = new DataView(notes.buffer, notes.byteOffset, notes.byteLength);
  for (let n = 0; n + 12 <= notes.length;) {
    const namesz = view.getUint32(n, true);
    const descsz = view.getUint32(n + 4, true);
    const type = view.getUint32(n + 8, true);
    const name = String.fromCharCode(...notes.subarray(n + 12, n + 12 + namesz));
    if (name === "Xen\0" && type === PHYS32_ENTRY) return true;
    n += 12 + align4(namesz) + align4(descsz);
  }
  return false;
}

function align4(n: number): number {
  return (n + 3) & ~3;
}
