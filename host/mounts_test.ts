import { deepStrictEqual as assertEquals } from "node:assert/strict";
import { ext4Label, findByLabel, mountOnce, parseMounts } from "./mounts.ts";

Deno.test("parseMounts: fields and octal escapes", () => {
  const m = parseMounts(
    "proc /proc proc rw,nosuid 0 0\n/dev/vda /var/lib/my\\040disk ext4 rw 0 0\n",
  );
  assertEquals(m, [
    { source: "proc", target: "/proc", fstype: "proc", options: "rw,nosuid" },
    { source: "/dev/vda", target: "/var/lib/my disk", fstype: "ext4", options: "rw" },
  ]);
});

Deno.test("ext4Label: no magic, no label", () => {
  assertEquals(ext4Label(new Uint8Array(2048)), null);
  assertEquals(ext4Label(new Uint8Array(100)), null);
});

Deno.test("mountOnce: skips a target that is already mounted, mounts one that is not", async () => {
  const ran: string[][] = [];
  const run = (
    argv: string[],
  ) => (ran.push(argv), Promise.resolve({ code: 0, stdout: "", stderr: "" }));
  const mounts = () => parseMounts("proc /proc proc rw 0 0\n");
  const dir = await Deno.makeTempDir();
  try {
    assertEquals(
      await mountOnce({ source: "proc", target: "/proc", fstype: "proc" }, { run, mounts }),
      false,
    );
    const target = `${dir}/run`;
    const spec = { source: "tmpfs", target, fstype: "tmpfs", options: "mode=0755" };
    assertEquals(await mountOnce(spec, { run, mounts }), true);
    assertEquals(ran, [["mount", "-t", "tmpfs", "-o", "mode=0755", "tmpfs", target]]);
    assertEquals(Deno.statSync(target).isDirectory, true);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

async function mkfs(path: string, args: string[]): Promise<void> {
  await Deno.writeFile(path, new Uint8Array(0));
  await Deno.truncate(path, 4 * 1024 * 1024);
  const out = await new Deno.Command("mkfs.ext4", { args: ["-q", "-F", ...args, path] }).output();
  if (out.code !== 0) throw new Error(new TextDecoder().decode(out.stderr));
}

Deno.test("findByLabel: reads the label from real mkfs.ext4 images", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await Deno.mkdir(`${dir}/sys`);
    await Deno.mkdir(`${dir}/dev`);
    for (const name of ["vda", "vdb", "loop0", "vdc"]) await Deno.mkdir(`${dir}/sys/${name}`);
    await mkfs(`${dir}/dev/vda`, ["-L", "OTHER"]);
    await mkfs(`${dir}/dev/vdb`, ["-L", "KAOSDATA"]);
    await mkfs(`${dir}/dev/loop0`, ["-L", "KAOSDATA"]); // loop devices are never the data disk
    await Deno.writeFile(`${dir}/dev/vdc`, new Uint8Array(4096)); // not a filesystem
    const head = await Deno.readFile(`${dir}/dev/vdb`);
    assertEquals(ext4Label(head.subarray(0, 2048)), "KAOSDATA");
    const opts = { sysBlock: `${dir}/sys`, devDir: `${dir}/dev` };
    assertEquals(await findByLabel("KAOSDATA", opts), `${dir}/dev/vdb`);
    assertEquals(await findByLabel("OTHER", opts), `${dir}/dev/vda`);
    assertEquals(await findByLabel("NONE", opts), null);
    assertEquals(await findByLabel("KAOSDATA", { sysBlock: `${dir}/nope` }), null);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
