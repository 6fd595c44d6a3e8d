import { deepStrictEqual as assertEquals, ok as assert, throws } from "node:assert/strict";
import { renderQcow2 } from "./qcow2.ts";

async function qemuImg(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const out = await new Deno.Command("qemu-img", { args, stdout: "piped", stderr: "piped" })
    .output();
  const text = (b: Uint8Array) => new TextDecoder().decode(b);
  return { code: out.code, stdout: text(out.stdout), stderr: text(out.stderr) };
}

/** Where the first difference lies, for a readable failure. */
function firstDiff(a: Uint8Array, b: Uint8Array): string {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) return `byte 0x${i.toString(16)}`;
  return a.length === b.length ? "none" : `length ${a.length} against ${b.length}`;
}

Deno.test("renderQcow2 writes what qemu-img create writes, and qemu-img check finds it clean", async () => {
  const dir = await Deno.makeTempDir({ prefix: "kaos-qcow2-" });
  try {
    const backing = `${dir}/module image, with a comma.aqi`;
    await Deno.writeFile(backing, new Uint8Array(3 * 1024 * 1024 + 512).fill(0x5a));
    const cases: { label: string; sizeBytes: number; args: string[]; backing?: boolean }[] = [
      {
        label: "overlay over a raw module image",
        sizeBytes: 3 * 1024 * 1024 + 512,
        args: ["-b", backing, "-F", "raw"],
        backing: true,
      },
      { label: "empty 64 MiB data disk", sizeBytes: 64 * 2 ** 20, args: ["64M"] },
      { label: "empty 2 GiB data disk (4 L1 entries)", sizeBytes: 2 ** 31, args: ["2G"] },
      { label: "empty 1 TiB data disk (a 16 KiB L1)", sizeBytes: 2 ** 40, args: ["1T"] },
    ];
    for (const c of cases) {
      const theirs = `${dir}/qemu-img.qcow2`;
      const mine = `${dir}/mine.qcow2`;
      // qemu-img wants the size last, after the file name.
      const [opts, size] = c.backing ? [c.args, []] : [[], c.args];
      const made = await qemuImg(["create", "-q", "-f", "qcow2", ...opts, theirs, ...size]);
      assertEquals(made.code, 0, made.stderr);
      const expected = await Deno.readFile(theirs);
      const bytes = renderQcow2({
        sizeBytes: c.sizeBytes,
        ...(c.backing ? { backing: { path: backing, format: "raw" as const } } : {}),
      });
      assert(firstDiff(bytes, expected) === "none", `${c.label}: ${firstDiff(bytes, expected)}`);
      await Deno.writeFile(mine, bytes);
      const check = await qemuImg(["check", "--output=json", mine]);
      assertEquals(check.code, 0, `${c.label}: ${check.stdout}${check.stderr}`);
      const report = JSON.parse(check.stdout);
      assertEquals([report["check-errors"], report["corruptions"] ?? 0], [0, 0], c.label);
      const info = JSON.parse((await qemuImg(["info", "--output=json", mine])).stdout);
      assertEquals(info["virtual-size"], c.sizeBytes, c.label);
      assertEquals(info["backing-filename"], c.backing ? backing : undefined, c.label);
    }
    // Reads through the overlay see the backing file's bytes.
    const ovl = `${dir}/read.qcow2`;
    await Deno.writeFile(
      ovl,
      renderQcow2({ sizeBytes: 3 * 1024 * 1024 + 512, backing: { path: backing, format: "raw" } }),
    );
    const cmp = await qemuImg(["compare", "-f", "qcow2", "-F", "raw", ovl, backing]);
    assertEquals(cmp.code, 0, cmp.stdout + cmp.stderr);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("renderQcow2 refuses bad input with the field named", () => {
  throws(() => renderQcow2({ sizeBytes: 1000 }), /multiple of 512/);
  throws(() => renderQcow2({ sizeBytes: -512 }), /sizeBytes/);
  throws(
    () => renderQcow2({ sizeBytes: 512, backing: { path: "relative.aqi", format: "raw" } }),
    /backing.path: the backing path must be absolute/,
  );
  throws(
    () => renderQcow2({ sizeBytes: 512, backing: { path: "/" + "a".repeat(1023), format: "raw" } }),
    /fit 1,023 bytes/,
  );
});
