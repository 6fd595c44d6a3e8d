/**
 * Inflating a bzImage's kernel ELF for PVH entry into a file (vmimage/pvh.ts says where it lies and
 * whether it has the note). Once per vKaOS image in kattach; also the benches and the kernel test.
 */
import { runCommand } from "../host/mod.ts";
import { bzImagePayload, hasPvhNoteAt } from "./pvh.ts";

/**
 * Inflates the kernel ELF of a gzip bzImage into `dest` (atomically) when it has the PVH note;
 * false otherwise (then nothing is written). The 16 MiB ELF never passes through kattach's heap:
 * `gzip -dc` writes it to a file (busybox's on the appliance; it refuses a payload that is not
 * gzip) and only the ELF's headers and notes are read back.
 */
export async function inflatePvhElf(bzImage: string, dest: string): Promise<boolean> {
  const file = await Deno.open(bzImage);
  let payload;
  try {
    const head = new Uint8Array(0x250);
    let got = 0;
    while (got < head.length) {
      const n = await file.read(head.subarray(got));
      if (n === null) break;
      got += n;
    }
    payload = bzImagePayload(head.subarray(0, got), (await file.stat()).size);
  } finally {
    file.close();
  }
  if (!payload) return false;
  const tmp = `${dest}.tmp-${crypto.randomUUID().slice(0, 8)}`;
  try {
    const out = await runCommand([
      "sh",
      "-c",
      'tail -c +"$2" "$1" | head -c "$3" | gzip -dc > "$4"',
      "sh",
      bzImage,
      String(payload.offset + 1),
      String(payload.length),
      tmp,
    ]);
    if (out.code !== 0 || !pvhNoteInFile(tmp)) return false;
    await Deno.chmod(tmp, 0o600);
    await Deno.rename(tmp, dest);
    return true;
  } finally {
    await Deno.remove(tmp).catch(() => {});
  }
}

function pvhNoteInFile(path: string): boolean {
  const file = Deno.openSync(path);
  try {
    return hasPvhNoteAt((offset, length) => {
      const buf = new Uint8Array(length);
      file.seekSync(offset, Deno.SeekMode.Start);
      let n = 0;
      while (n < length) {
        const got = file.readSync(buf.subarray(n));
        if (got === null || got === 0) break;
        n += got;
      }
      return buf.subarray(0, n);
    });
  } finally {
    file.close();
  }
}
