/**
 * The second archive (kattach/late_archive.ts): archives made by the real `cpio -H newc` and
 * `zstd`, installed into a temporary root; damaged, truncated or missing archives change nothing.
 * The boot medium itself (ISO 9660 on the stick) is exercised by the image tests.
 */
import { deepStrictEqual as assertEquals, ok as assert, rejects } from "node:assert/strict";
import { runCommand } from "../host/mod.ts";
import { readNewc, UserError } from "../lib/mod.ts";
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
async function makeArchive(dir: string): Promise<{ zst: Uint8Array; manifest: LateManifest }> {
  await sh(
    "mkdir -p tree/usr/bin tree/usr/share/qemu && printf 'ELF tool' > tree/usr/bin/tool && " +
      "chmod 0755 tree/usr/bin/tool && head -c 100000 /dev/urandom > tree/usr/share/qemu/qboot.rom && " +
      "chmod 0644 tree/usr/share/qemu/qboot.rom && ln -s qboot.rom tree/usr/share/qemu/bios-microvm.bin && " +
      "(cd tree && find . -mindepth 1 -printf '%P\\n' | LC_ALL=C sort | " +
      "cpio --quiet -o -H newc -R 0:0) | zstd -q -19 -c > late.cpio.zst",
    dir,
  );
  const zst = await Deno.readFile(`${dir}/late.cpio.zst`);
  const sha256 = (await sh("sha256sum late.cpio.zst", dir)).slice(0, 64);
  return { zst, manifest: { file: "/boot/late.cpio.zst", bytes: zst.length, sha256 } };
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

Deno.test("installLateArchive puts files, modes and links in place beside what is there", () =>
  withTemp(async (dir) => {
    const { zst, manifest } = await makeArchive(dir);
    const root = `${dir}/root`;
    await sh("mkdir -p root/usr/bin && printf early > root/usr/bin/deno", dir);
    const r = await installLateArchive(zst, { manifest, root, source: "test" });
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

Deno.test("installLateArchive refuses a damaged or truncated archive and changes nothing", () =>
  withTemp(async (dir) => {
    const { zst, manifest } = await makeArchive(dir);
    const root = `${dir}/root`;
    await sh("mkdir -p root/usr/bin && printf early > root/usr/bin/deno", dir);
    const before = await listing(root);
    const flipped = zst.slice();
    flipped[flipped.length >> 1] ^= 0x40;
    await rejects(
      installLateArchive(flipped, { manifest, root, source: "/dev/sda1:/boot/late.cpio.zst" }),
      (e: Error) =>
        e instanceof UserError &&
        /^The guest runtime archive \/dev\/sda1:\/boot\/late.cpio.zst is corrupt: sha256 [0-9a-f]{64}, the image says/
          .test(e.message),
    );
    await rejects(
      installLateArchive(zst.subarray(0, 1000), { manifest, root, source: "t" }),
      /corrupt: 1000 bytes, the image says \d+/,
    );
    // The manifest agrees with bytes that are not a zstd frame: refused by the decompressor.
    const junk = new TextEncoder().encode("not zstd at all");
    const junkSha = (await sh("printf 'not zstd at all' | sha256sum", dir)).slice(0, 64);
    await rejects(
      installLateArchive(junk, {
        manifest: { ...manifest, bytes: junk.length, sha256: junkSha },
        root,
        source: "t",
      }),
      /corrupt: zstd: /,
    );
    assertEquals(await listing(root), before);
  }));

/** A newc header + name + data, as `cpio -H newc` writes one entry. */
function entry(name: string, mode: number, data = "", nlink = 1): string {
  const hex = (n: number) => n.toString(16).padStart(8, "0");
  const head = "070701" +
    [0, mode, 0, 0, nlink, 0, data.length, 0, 0, 0, 0, name.length + 1, 0].map(hex).join("");
  const pad = (s: string) => s + "\0".repeat((4 - (s.length % 4)) % 4);
  return pad(head + name + "\0") + pad(data);
}
const trailer = entry("TRAILER!!!", 0);
const bytes = (s: string) => new TextEncoder().encode(s);

Deno.test("readNewc refuses what the installer must not write", () => {
  assertEquals(readNewc(bytes(entry("a/b", 0o100600, "xy") + trailer)), [
    { kind: "file", path: "a/b", mode: 0o600, data: bytes("xy") },
  ]);
  const refused: [string, RegExp][] = [
    [entry("/etc/passwd", 0o100644, "x") + trailer, /the path is absolute/],
    [entry("a/../../etc", 0o100644, "x") + trailer, /'\.\.' component/],
    [entry("dev/sda", 0o060644) + trailer, /only directories, files and symbolic links/],
    [entry("a", 0o100644, "x", 2) + trailer, /hard links are not supported/],
    [entry("a", 0o100644, "xyz"), /ends before its TRAILER!!! entry/],
    [entry("a", 0o100644, "xyzxyzxyz").slice(0, 115), /runs past the end/],
    ["070707" + entry("a", 0o100644).slice(6), /bad magic/],
  ];
  for (const [archive, re] of refused) {
    let err: unknown;
    try {
      readNewc(bytes(archive), "test archive");
    } catch (e) {
      err = e;
    }
    assert(err instanceof UserError, `expected a UserError for ${re}, got ${err}`);
    assert(re.test(err.message), `${err.message} does not match ${re}`);
    assert(err.message.startsWith("Cannot read the test archive: "), err.message);
  }
});

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
