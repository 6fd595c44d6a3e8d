/**
 * scripts/run-appliance's stick: a new image written over a stick whose KAOSDATA partition grew
 * to the stick's end at its first boot keeps that partition whole, also when the new image's
 * boot partitions are larger (the stick file grows; before, it refused: "does not fit").
 * Small images with real MBR tables (sfdisk) stand in for the built image, and a stub
 * `qemu-system-x86_64` first on PATH ends the script where it would boot.
 */
import { deepStrictEqual as assertEquals, match as assertMatch } from "node:assert/strict";
import { REPO_ROOT } from "./_harness.ts";
import { freePort, run } from "./_util.ts";

const MIB = 1 << 20;
const SECTOR = 512;

/** An image of `size` bytes whose MBR has three partitions, the third (KAOSDATA) at `p3`. */
async function image(path: string, size: number, p3: number): Promise<void> {
  await Deno.writeFile(path, new Uint8Array(0));
  await Deno.truncate(path, size);
  const table = `label: dos\nstart=2048, size=${p3 - 2048 - 1024}, type=83\n` +
    `start=${p3 - 1024}, size=1024, type=ef\nstart=${p3}, size=2048, type=83\n`;
  const r = await run(["sfdisk", "--no-reread", "--no-tell-kernel", path], { stdin: table });
  assertEquals(r.code, 0, r.stderr);
}

/** The start and sector count of MBR partition 3. */
function partition3(bytes: Uint8Array): [number, number] {
  const v = new DataView(bytes.buffer, bytes.byteOffset + 446 + 32 + 8, 8);
  return [v.getUint32(0, true), v.getUint32(4, true)];
}

function readAt(path: string, offset: number, length: number): string {
  const f = Deno.openSync(path);
  try {
    f.seekSync(offset, Deno.SeekMode.Start);
    const buf = new Uint8Array(length);
    f.readSync(buf);
    return new TextDecoder().decode(buf);
  } finally {
    f.close();
  }
}

function writeAt(path: string, offset: number, bytes: Uint8Array): void {
  const f = Deno.openSync(path, { write: true });
  try {
    f.seekSync(offset, Deno.SeekMode.Start);
    f.writeSync(bytes);
  } finally {
    f.close();
  }
}

Deno.test("run-appliance: a grown KAOSDATA is carried onto a larger new image whole", async () => {
  const dir = await Deno.makeTempDir({ prefix: "kaos_stick_" });
  try {
    const bin = `${dir}/bin`;
    await Deno.mkdir(bin);
    await Deno.writeTextFile(`${bin}/qemu-system-x86_64`, "#!/bin/sh\nexit 0\n", { mode: 0o755 });
    const stick = `${dir}/stick.img`;
    const boot = (img: string) =>
      run([
        `${REPO_ROOT}/scripts/run-appliance`,
        ...["--image", img, "--stick", stick, "--stick-size", "32M"],
        ...["--disk", `${dir}/disk.img`, "--disk-size", "1M", "--port", String(freePort())],
      ], { env: { PATH: `${bin}:${Deno.env.get("PATH")}` } });

    await image(`${dir}/old.img`, 8 * MIB, 8192);
    const first = await boot(`${dir}/old.img`);
    assertEquals(first.code, 0, first.stderr);
    assertMatch(first.stderr, /to a new stick/);

    // What kattach does at the first boot: KAOSDATA grows to the stick's end; data at both ends.
    const grown = 32 * MIB / SECTOR - 8192;
    const entry = new Uint8Array(4);
    new DataView(entry.buffer).setUint32(0, grown, true);
    writeAt(stick, 446 + 32 + 12, entry);
    writeAt(stick, 8192 * SECTOR, new TextEncoder().encode("KAOSDATA-HEAD"));
    writeAt(stick, 32 * MIB - 16, new TextEncoder().encode("KAOSDATA-TAIL"));

    // A release whose boot partitions are 1 MiB larger.
    await image(`${dir}/new.img`, 9 * MIB, 10240);
    const second = await boot(`${dir}/new.img`);
    assertEquals(second.code, 0, second.stderr);
    assertMatch(
      second.stderr,
      /the stick grows by 1024 KiB to 34603008 bytes to keep its KAOSDATA partition whole/,
    );
    assertEquals((await Deno.stat(stick)).size, 33 * MIB);
    const head = await Deno.open(stick).then(async (f) => {
      const b = new Uint8Array(512);
      await f.read(b);
      f.close();
      return b;
    });
    assertEquals(partition3(head), [10240, grown]);
    assertEquals(readAt(stick, 10240 * SECTOR, 13), "KAOSDATA-HEAD");
    assertEquals(readAt(stick, 33 * MIB - 16, 13), "KAOSDATA-TAIL");

    // The same image again: the stick is left as it is.
    const third = await boot(`${dir}/new.img`);
    assertEquals(third.code, 0, third.stderr);
    assertEquals((await Deno.stat(stick)).size, 33 * MIB);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
