import { deepStrictEqual as assertEquals, ok as assert } from "node:assert/strict";
import type { CommandResult } from "../host/mod.ts";
import { mountDataDisk } from "./data_disk.ts";

/** A fake host: answers by command name, records every argv. */
function fakeRun(codes: Record<string, number>) {
  const calls: string[][] = [];
  const run = (argv: string[]): Promise<CommandResult> => {
    calls.push(argv);
    const key = argv[0] === "mount" ? `mount ${argv[2]}` : argv[0];
    const code = codes[key] ?? 0;
    return Promise.resolve({ code, stdout: "", stderr: code ? `${argv[0]} said no` : "" });
  };
  return { run, calls };
}

async function boot(
  codes: Record<string, number>,
  dev: string | null,
  grown: number | null = null,
) {
  const target = await Deno.makeTempDir({ prefix: "kaos-data-disk-test-" });
  const lines: string[] = [];
  const { run, calls } = fakeRun(codes);
  try {
    const status = await mountDataDisk({
      run,
      log: (l) => lines.push(l),
      label: "KAOSDATA",
      target,
      waitMs: 0,
      find: () => Promise.resolve(dev),
      grow: () => Promise.resolve(grown),
    });
    const mounts = calls.filter((c) => c[0] === "mount").map((c) => `${c[2]} ${c.at(-2)}`);
    return { status, lines, calls, mounts };
  } finally {
    await Deno.remove(target, { recursive: true });
  }
}

Deno.test("data disk: a healthy partition is checked and mounted", async () => {
  const r = await boot({}, "/dev/sda3");
  assertEquals(r.status.state, "mounted");
  assertEquals(r.calls[0], ["e2fsck", "-p", "/dev/sda3"]);
  assertEquals(r.mounts, ["ext4 /dev/sda3"]);
});

Deno.test("data disk: a grown partition gets e2fsck -f and resize2fs before the mount", async () => {
  const r = await boot({}, "/dev/null", 4 * 2 ** 30); // a node that exists after the re-read
  assertEquals(r.status.state, "mounted");
  assertEquals(r.calls.map((c) => c[0]), ["e2fsck", "resize2fs", "mount"]);
  assertEquals(r.calls[0], ["e2fsck", "-f", "-p", "/dev/null"]);
  assert(r.lines.some((l) => /grown to 4096 MiB/.test(l)), r.lines.join("\n"));
});

Deno.test("data disk: none found means RAM, said as such", async () => {
  const r = await boot({}, null);
  assertEquals(r.status, {
    state: "absent",
    device: null,
    detail: "no disk labelled KAOSDATA: state lives in RAM and is lost at power-off",
  });
  assertEquals(r.mounts, ["tmpfs tmpfs"]);
});

Deno.test("data disk: found but damaged or unmountable is a failure, never a silent RAM dir", async () => {
  for (
    const [codes, why] of [[{ e2fsck: 8 }, /damaged/], [
      { "mount ext4": 32 },
      /cannot be mounted/,
    ]] as const
  ) {
    const r = await boot(codes, "/dev/sda3");
    assertEquals(r.status.state, "failed");
    assertEquals(r.status.device, "/dev/sda3");
    assert(why.test(r.status.detail), r.status.detail);
    assert(/refuses changes/.test(r.status.detail), r.status.detail);
    assert(
      r.lines.some((l) => l.startsWith("WARNING: the data partition /dev/sda3")),
      r.lines.join("\n"),
    );
    assertEquals(r.mounts.at(-1), "tmpfs tmpfs");
  }
});

Deno.test("the wait for the label lasts until waitMs after the drivers still loading settle", async () => {
  const target = await Deno.makeTempDir({ prefix: "kaos-data-disk-test-" });
  const { run } = fakeRun({});
  let loaded = () => {};
  const driversLoading = new Promise<void>((resolve) => loaded = resolve);
  let looks = 0;
  let loadedYet = false;
  try {
    const status = mountDataDisk({
      run,
      log: () => {},
      label: "KAOSDATA",
      target,
      waitMs: 0, // on its own it would give up after the first look
      driversLoading,
      // The disk shows up only once the drivers are in (as behind an EHCI controller).
      find: () => Promise.resolve(++looks > 3 && loadedYet ? "/dev/sdb3" : null),
      grow: () => Promise.resolve(null),
    });
    while (looks < 3) await new Promise((r) => setTimeout(r, 10));
    loadedYet = true;
    loaded();
    assertEquals((await status).state, "mounted");
    assertEquals((await status).device, "/dev/sdb3");
  } finally {
    await Deno.remove(target, { recursive: true });
  }
});
