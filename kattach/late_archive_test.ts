/**
 * The second archive (kattach/late_archive.ts): archives made by the real `cpio -H newc` and
 * `zstd`, installed into a temporary root by the real `sha256sum`, `zstd` and cpio (GNU's and
 * busybox's, the image's); damaged, truncated, unexpected or missing archives change nothing.
 * The boot medium itself (ISO 9660 on the stick) is exercised by the image tests.
 */
import { deepStrictEqual as assertEquals, ok as assert, rejects } from "node:assert/strict";
import { runCommand } from "../host/mod.ts";
import { UserError } from "../lib/mod.ts";
import {
  installLateArchive,
  isIso9660,
  type LateManifest,
  readLateManifest,
  tcpListening,
  unpackLateArchive,
} from "./late_archive.ts";

async function sh(script: string, cwd: string): Promise<string> {
  const out = await new Deno.Command("sh", { args: ["-c", script], cwd, stderr: "piped" }).output();
  const text = new TextDecoder().decode(out.stdout);
  if (!out.success) throw new Error(`${script}: ${new TextDecoder().decode(out.stderr)}`);
  return text;
}

/** A tree like the real one (a binary, firmware and a link to it), as cpio + zstd, with its manifest. */
async function makeArchive(
  dir: string,
  extra = "",
): Promise<{ file: string; zst: Uint8Array; manifest: LateManifest }> {
  await sh(
    "mkdir -p tree/usr/bin tree/usr/share/qemu && printf 'ELF tool' > tree/usr/bin/tool && " +
      extra +
      "chmod 0755 tree/usr/bin/tool && head -c 100000 /dev/urandom > tree/usr/share/qemu/qboot.rom && " +
      "chmod 0644 tree/usr/share/qemu/qboot.rom && ln -s qboot.rom tree/usr/share/qemu/bios-microvm.bin && " +
      "(cd tree && find . -mindepth 1 -printf '%P\\n' | LC_ALL=C sort | " +
      "cpio --quiet -o -H newc -R 0:0) | zstd -q -19 -c > late.cpio.zst",
    dir,
  );
  const file = `${dir}/late.cpio.zst`;
  const zst = await Deno.readFile(file);
  const sha256 = (await sh("sha256sum late.cpio.zst", dir)).slice(0, 64);
  return { file, zst, manifest: { file: "/boot/late.cpio.zst", bytes: zst.length, sha256 } };
}

/** Every path under `root`, sorted, each with its link target (empty for others). */
async function listing(root: string): Promise<string[]> {
  const text = await sh("find . -mindepth 1 -printf '%P %l\\n' | LC_ALL=C sort", root);
  return text.split("\n").filter((l) => l !== "");
}

async function withTemp(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "kaos-late-test-" });
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

/** The cpio programs the installer is tried with: the host's (GNU) and busybox's (the image's). */
const CPIOS: string[][] = [["cpio"], ["busybox", "cpio"]];

for (const cpio of CPIOS) {
  Deno.test(`installLateArchive (${cpio.join(" ")}) puts files, modes and links in place beside what is there`, () =>
    withTemp(async (dir) => {
      const { file, manifest } = await makeArchive(dir);
      const root = `${dir}/root`;
      await sh("mkdir -p root/usr/bin && printf early > root/usr/bin/deno", dir);
      const r = await installLateArchive(file, {
        manifest,
        root,
        source: "test",
        run: runCommand,
        cpio,
      });
      assertEquals(r.files, 3);
      assertEquals(r.bytes, 8 + 100000);
      assertEquals(await listing(root), [
        "usr ",
        "usr/bin ",
        "usr/bin/deno ",
        "usr/bin/tool ",
        "usr/share ",
        "usr/share/qemu ",
        "usr/share/qemu/bios-microvm.bin qboot.rom",
        "usr/share/qemu/qboot.rom ",
      ]);
      assertEquals(await Deno.readTextFile(`${root}/usr/bin/tool`), "ELF tool");
      assertEquals((await Deno.stat(`${root}/usr/bin/tool`)).mode! & 0o7777, 0o755);
      assertEquals((await Deno.stat(`${root}/usr/share/qemu/qboot.rom`)).mode! & 0o7777, 0o644);
      assertEquals(
        await Deno.readFile(`${root}/usr/share/qemu/bios-microvm.bin`),
        await Deno.readFile(`${dir}/tree/usr/share/qemu/qboot.rom`),
      );
      assertEquals(await Deno.readTextFile(`${root}/usr/bin/deno`), "early");
    }));
}

Deno.test("installLateArchive refuses a damaged or truncated archive and changes nothing", () =>
  withTemp(async (dir) => {
    const { zst, manifest } = await makeArchive(dir);
    const root = `${dir}/root`;
    await sh("mkdir -p root/usr/bin && printf early > root/usr/bin/deno", dir);
    const before = await listing(root);
    const flipped = zst.slice();
    flipped[flipped.length >> 1] ^= 0x40;
    const write = async (bytes: Uint8Array) => {
      await Deno.writeFile(`${dir}/bad.zst`, bytes);
      return `${dir}/bad.zst`;
    };
    const run = runCommand;
    await rejects(
      installLateArchive(await write(flipped), {
        manifest,
        root,
        source: "/dev/sda1:/boot/late.cpio.zst",
        run,
      }),
      (e: Error) =>
        e instanceof UserError &&
        /^The guest runtime archive \/dev\/sda1:\/boot\/late.cpio.zst is corrupt: sha256 [0-9a-f]{64}, the image says/
          .test(e.message),
    );
    await rejects(
      installLateArchive(await write(zst.subarray(0, 1000)), { manifest, root, source: "t", run }),
      /corrupt: 1000 bytes, the image says \d+/,
    );
    // The manifest agrees with bytes that are not a zstd frame: refused by the decompressor.
    const junk = new TextEncoder().encode("not zstd at all");
    const junkSha = (await sh("printf 'not zstd at all' | sha256sum", dir)).slice(0, 64);
    await rejects(
      installLateArchive(await write(junk), {
        manifest: { ...manifest, bytes: junk.length, sha256: junkSha },
        root,
        source: "t",
        run,
      }),
      /corrupt: zstd \| cpio exited \d+: .*zstd/,
    );
    assertEquals(await listing(root), before);
  }));

Deno.test("installLateArchive refuses an archive holding anything but directories, files and links", () =>
  withTemp(async (dir) => {
    const { file, manifest } = await makeArchive(dir, "mkfifo tree/usr/bin/pipe && ");
    const root = `${dir}/root`;
    await sh("mkdir -p root/usr/bin && printf early > root/usr/bin/deno", dir);
    const before = await listing(root);
    for (const cpio of CPIOS) {
      await rejects(
        installLateArchive(file, { manifest, root, source: "t", run: runCommand, cpio }),
        (e: Error) =>
          e instanceof UserError &&
          e.message ===
            "The guest runtime archive t is corrupt: usr/bin/pipe: only directories, files and symbolic links belong in it",
      );
      assertEquals(await listing(root), before);
    }
  }));

Deno.test("readLateManifest: none, valid, invalid", () =>
  withTemp(async (dir) => {
    assertEquals(await readLateManifest(`${dir}/absent.json`), undefined);
    const ok = { file: "/boot/late.cpio.zst", bytes: 5, sha256: "a".repeat(64) };
    await Deno.writeTextFile(`${dir}/ok.json`, JSON.stringify(ok));
    assertEquals(await readLateManifest(`${dir}/ok.json`), ok);
    await Deno.writeTextFile(
      `${dir}/bad.json`,
      JSON.stringify({ ...ok, file: "/etc/x", extra: 1 }),
    );
    await rejects(readLateManifest(`${dir}/bad.json`), (e: Error) => e instanceof UserError);
    await Deno.writeTextFile(`${dir}/junk.json`, "{");
    await rejects(readLateManifest(`${dir}/junk.json`), /is not JSON/);
  }));

Deno.test("unpackLateArchive: no manifest resolves at once; no boot medium rejects and logs", () =>
  withTemp(async (dir) => {
    const lines: string[] = [];
    const log = (l: string) => lines.push(l);
    const never = new Promise<void>(() => {});
    // One archive (no late.json): nothing to wait for, even if `when` never settles.
    await unpackLateArchive({
      run: runCommand,
      log,
      when: never,
      manifestPaths: [`${dir}/no.json`],
    });
    const { manifest } = await makeArchive(dir);
    await Deno.writeTextFile(`${dir}/late.json`, JSON.stringify(manifest));
    await Deno.mkdir(`${dir}/sys-block`); // no block devices at all
    await rejects(
      unpackLateArchive({
        run: runCommand,
        log,
        when: Promise.resolve(),
        manifestPaths: [`${dir}/no.json`, `${dir}/late.json`],
        sysBlock: `${dir}/sys-block`,
        waitMs: 0,
        root: `${dir}/root`,
      }),
      (e: Error) =>
        e instanceof UserError &&
        e.message === "Cannot find the guest runtime archive /boot/late.cpio.zst: no boot " +
            "medium holds it (no ISO 9660 file system found)",
    );
    assertEquals(lines, [
      "WARNING: Cannot find the guest runtime archive /boot/late.cpio.zst: no boot medium " +
      "holds it (no ISO 9660 file system found); guests cannot start",
    ]);
  }));

Deno.test("isIso9660 knows an ISO made by xorriso; tcpListening sees a real listener", () =>
  withTemp(async (dir) => {
    await sh(
      "mkdir -p iso/boot && echo x > iso/boot/f && " +
        "xorriso -report_about SORRY -as mkisofs -r -V T -o t.iso iso 2>/dev/null",
      dir,
    );
    const iso = await Deno.readFile(`${dir}/t.iso`);
    assert(isIso9660(iso.subarray(16 * 2048, 16 * 2048 + 8)));
    assert(!isIso9660(iso.subarray(0, 8)));
    const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    const port = (l.addr as Deno.NetAddr).port;
    try {
      assert(await tcpListening(port), `port ${port} listens`);
    } finally {
      l.close();
    }
    assert(!await tcpListening(port), `port ${port} was closed`);
  }));
