import {
  deepStrictEqual as assertEquals,
  ok as assert,
  throws as assertThrows,
} from "node:assert/strict";
import { padUstar, readUstar, writeUstar } from "./ustar.ts";
import { UserError } from "./errors.ts";

const enc = new TextEncoder();
const dec = new TextDecoder();

/** Rewrites one header field and fixes the checksum, to craft malformed archives. */
function patch(archive: Uint8Array, headerAt: number, offset: number, text: string): Uint8Array {
  const out = archive.slice();
  const h = out.subarray(headerAt, headerAt + 512);
  h.fill(0, offset, offset + text.length);
  h.set(enc.encode(text), offset);
  let sum = 0;
  for (let i = 0; i < 512; i++) sum += i >= 148 && i < 156 ? 0x20 : h[i];
  h.set(enc.encode(sum.toString(8).padStart(6, "0") + "\0 "), 148);
  return out;
}

function throwsUser(fn: () => unknown, re: RegExp): void {
  assertThrows(fn, (e: unknown) => {
    assert(e instanceof UserError, `expected a UserError, got ${e}`);
    assert(re.test(e.message), `${JSON.stringify(e.message)} does not match ${re}`);
    return true;
  });
}

async function run(argv: string[], cwd?: string): Promise<string> {
  const out = await new Deno.Command(argv[0], { args: argv.slice(1), cwd, stderr: "piped" })
    .output();
  const text = dec.decode(out.stdout) + dec.decode(out.stderr);
  if (!out.success) throw new Error(`${argv.join(" ")} failed: ${text}`);
  return text;
}

const long = "d".repeat(60) + "/" + "e".repeat(60) + "/" + "f".repeat(90);
const sample = [
  { path: "kernel", data: enc.encode("K".repeat(1000)), mode: 0o755 },
  { path: "empty", data: new Uint8Array(0) },
  { path: "dir/sub/file.txt", data: enc.encode("hello\n") },
  { path: long, data: enc.encode("long name") },
];

Deno.test("writeUstar then readUstar round-trips files and modes", () => {
  const tar = writeUstar(sample);
  assertEquals(tar.length % 512, 0);
  const back = readUstar(tar);
  assertEquals(back.map((e) => e.path), sample.map((f) => f.path));
  assertEquals(back[0].mode, 0o755);
  assertEquals(back[1].mode, 0o644);
  for (let i = 0; i < sample.length; i++) assertEquals(back[i].data, sample[i].data);
});

Deno.test("writeUstar is deterministic and refuses bad paths", () => {
  assertEquals(writeUstar(sample), writeUstar(sample));
  const d = new Uint8Array(1);
  throwsUser(() => writeUstar([{ path: "/etc/passwd", data: d }]), /absolute/);
  throwsUser(() => writeUstar([{ path: "a/../b", data: d }]), /'\.\.'/);
  throwsUser(() => writeUstar([{ path: "a//b", data: d }]), /empty/);
  throwsUser(() => writeUstar([{ path: "x".repeat(101), data: d }]), /too long/);
  throwsUser(() => writeUstar([{ path: "a", data: d }, { path: "a", data: d }]), /twice/);
  throwsUser(() => writeUstar([{ path: "a", data: d, mode: 0o10000 }]), /mode/);
});

Deno.test("padUstar pads to a 512 multiple and a minimum", () => {
  const tar = writeUstar([{ path: "a", data: enc.encode("x") }]);
  assertEquals(padUstar(tar, 65536).length, 65536);
  assertEquals(padUstar(tar).length, tar.length);
  assertEquals(readUstar(padUstar(tar, 65536)).length, 1);
});

Deno.test("GNU tar and busybox tar extract what writeUstar wrote", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await Deno.writeFile(`${dir}/a.tar`, writeUstar(sample));
    for (const tool of [["tar"], ["busybox", "tar"]]) {
      const into = `${dir}/${tool.length}`;
      await Deno.mkdir(into);
      await run([...tool, "-xf", `${dir}/a.tar`, "-C", into]);
      for (const f of sample) assertEquals(await Deno.readFile(`${into}/${f.path}`), f.data);
      assertEquals((await Deno.stat(`${into}/kernel`)).mode! & 0o777, 0o755);
    }
    const list = await run(["tar", "-tvf", `${dir}/a.tar`]);
    assert(list.includes("root/root"), list);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("readUstar reads archives made by GNU tar and busybox tar", async () => {
  const dir = await Deno.makeTempDir();
  try {
    for (const f of sample) {
      await Deno.mkdir(`${dir}/src/${f.path.replace(/\/?[^/]*$/, "")}`, { recursive: true });
      await Deno.writeFile(`${dir}/src/${f.path}`, f.data);
    }
    const names = sample.map((f) => f.path);
    await run(["tar", "--format=ustar", "-cf", `${dir}/gnu.tar`, ...names], `${dir}/src`);
    const gnu = readUstar(await Deno.readFile(`${dir}/gnu.tar`));
    assertEquals(gnu.map((e) => e.path), names);
    assertEquals(gnu[3].data, sample[3].data);
    // busybox writes GNU long-name headers for names over 100 bytes: only the short ones here
    const short = names.slice(0, 3);
    await run(["busybox", "tar", "-cf", `${dir}/bb.tar`, ...short], `${dir}/src`);
    const bb = readUstar(await Deno.readFile(`${dir}/bb.tar`));
    assertEquals(bb.map((e) => e.path), short);
    assertEquals(bb[2].data, sample[2].data);
    // a whole tree with "./" and directory entries: refused unless directories are allowed
    await run(["tar", "--format=ustar", "-cf", `${dir}/tree.tar`, "."], `${dir}/src`);
    const tree = await Deno.readFile(`${dir}/tree.tar`);
    throwsUser(() => readUstar(tree), /is a directory/);
    const files = readUstar(tree, { allowDirectories: true }).map((e) => e.path).sort();
    assertEquals(files, [...names].sort());
    await run(["busybox", "tar", "-cf", `${dir}/bb-long.tar`, long], `${dir}/src`);
    throwsUser(() => readUstar(Deno.readFileSync(`${dir}/bb-long.tar`)), /long-name/);
    await run(["tar", "--format=pax", "-cf", `${dir}/pax.tar`, "kernel"], `${dir}/src`);
    throwsUser(() => readUstar(Deno.readFileSync(`${dir}/pax.tar`)), /pax/);
    await Deno.symlink("kernel", `${dir}/src/link`);
    await run(["tar", "--format=ustar", "-cf", `${dir}/sym.tar`, "link"], `${dir}/src`);
    throwsUser(() => readUstar(Deno.readFileSync(`${dir}/sym.tar`)), /symbolic link/);
    await Deno.link(`${dir}/src/kernel`, `${dir}/src/hard`);
    await run(["tar", "--format=ustar", "-cf", `${dir}/hard.tar`, "kernel", "hard"], `${dir}/src`);
    throwsUser(() => readUstar(Deno.readFileSync(`${dir}/hard.tar`)), /hard link/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("readUstar refuses malformed archives with a message naming the problem", () => {
  const tar = writeUstar([{ path: "kernel", data: enc.encode("K".repeat(700)) }, {
    path: "initrd",
    data: enc.encode("I"),
  }]);
  throwsUser(() => readUstar(patch(tar, 0, 0, "../x")), /'\.\.'/);
  throwsUser(() => readUstar(patch(tar, 0, 0, "a/../../x")), /'\.\.'/);
  throwsUser(() => readUstar(patch(tar, 0, 0, "/etc/shadow")), /absolute/);
  throwsUser(() => readUstar(patch(tar, 0, 156, "3")), /character device/);
  throwsUser(() => readUstar(patch(tar, 0, 156, "4")), /block device/);
  throwsUser(() => readUstar(patch(tar, 0, 156, "6")), /FIFO/);
  throwsUser(() => readUstar(patch(tar, 0, 156, "Z")), /unknown type/);
  throwsUser(() => readUstar(patch(tar, 0, 124, "9999")), /not octal/);
  throwsUser(() => readUstar(patch(tar, 0, 257, "posix")), /not ustar/);
  throwsUser(() => readUstar(patch(tar, 1536, 0, "kernel")), /appears twice/);
  const bad = tar.slice();
  bad[10] ^= 0x41;
  throwsUser(() => readUstar(bad), /checksum/);
  throwsUser(() => readUstar(tar.subarray(0, 900)), /"kernel" is truncated/);
  throwsUser(() => readUstar(tar.subarray(0, 2560)), /truncated \(no end-of-archive/);
  throwsUser(() => readUstar(tar.subarray(0, 2560 + 512)), /lone zero block/);
  throwsUser(() => readUstar(new Uint8Array(0)), /truncated/);
  throwsUser(() => readUstar(enc.encode("not a tar".repeat(100))), /checksum|not octal/);
  throwsUser(() => readUstar(tar, { maxFileBytes: 699 }), /700 bytes, over 699/);
  throwsUser(() => readUstar(tar, { maxTotalBytes: 700 }), /add up/);
  throwsUser(
    () => readUstar(tar, { maxEntries: 1, label: "vkaos.aqi" }),
    /vkaos\.aqi: more than 1/,
  );
  assertEquals(readUstar(tar, { maxFileBytes: 700, maxTotalBytes: 701 }).length, 2);
});
