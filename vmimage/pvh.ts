/**
 * The kernel ELF inside a bzImage, for QEMU's PVH entry (`-M microvm -kernel vmlinux`): a bzImage
 * carries its kernel as a compressed ELF that the guest inflates itself at every boot, which under
 * TCG costs about 0.15 s of CPU (buildroot/vkaos-kernel/README.md). kattach inflates it once per
 * vKaOS image on the host instead and boots the ELF directly when it has the PVH note. Pure.
 */
import { gunzipSync } from "node:zlib";

/** Xen's ELF note type for the 32-bit PVH entry point (XEN_ELFNOTE_PHYS32_ENTRY). */
const PHYS32_ENTRY = 18;

/**
 * The ELF kernel a bzImage carries, when it is gzip-compressed (the vKaOS kernel's
 * `CONFIG_KERNEL_GZIP`) and has the PVH entry note; null for anything else (another compression,
 * no PVH support, not a bzImage): boot the bzImage itself then.
 */
export function pvhElfFromBzImage(bz: Uint8Array): Uint8Array | null {
  if (bz.length < 0x250) return null;
  const view = new DataView(bz.buffer, bz.byteOffset, bz.byteLength);
  const magic = String.fromCharCode(...bz.subarray(0x202, 0x206));
  // payload_offset and payload_length exist from boot protocol 2.08 on.
  if (magic !== "HdrS" || view.getUint16(0x206, true) < 0x208) return null;
  const setupSects = bz[0x1f1] || 4;
  const start = (setupSects + 1) * 512 + view.getUint32(0x248, true);
  const length = view.getUint32(0x24c, true);
  if (length < 18 || start + length > bz.length) return null;
  const payload = bz.subarray(start, start + length);
  if (payload[0] !== 0x1f || payload[1] !== 0x8b) return null;
  let elf: Uint8Array;
  try {
    elf = new Uint8Array(gunzipSync(payload));
  } catch {
    return null;
  }
  return hasPvhNote(elf) ? elf : null;
}

/** True for a 64-bit little-endian ELF with a "Xen" PHYS32_ENTRY note in a PT_NOTE segment. */
export function hasPvhNote(elf: Uint8Array): boolean {
  if (elf.length < 64 || elf[0] !== 0x7f || elf[1] !== 0x45 || elf[2] !== 0x4c) return false;
  if (elf[3] !== 0x46 || elf[4] !== 2 || elf[5] !== 1) return false;
  const view = new DataView(elf.buffer, elf.byteOffset, elf.byteLength);
  const phoff = Number(view.getBigUint64(0x20, true));
  const phentsize = view.getUint16(0x36, true);
  const phnum = view.getUint16(0x38, true);
  for (let i = 0; i < phnum; i++) {
    const ph = phoff + i * phentsize;
    if (ph + 56 > elf.length) return false;
    if (view.getUint32(ph, true) !== 4) continue; // PT_NOTE
    const offset = Number(view.getBigUint64(ph + 8, true));
    const end = offset + Number(view.getBigUint64(ph + 32, true));
    if (end > elf.length) return false;
    for (let n = offset; n + 12 <= end;) {
      const namesz = view.getUint32(n, true);
      const descsz = view.getUint32(n + 4, true);
      const type = view.getUint32(n + 8, true);
      const name = String.fromCharCode(...elf.subarray(n + 12, n + 12 + namesz));
      if (name === "Xen\0" && type === PHYS32_ENTRY) return true;
      n += 12 + align4(namesz) + align4(descsz);
    }
  }
  return false;
}

function align4(n: number): number {
  return (n + 3) & ~3;
}
