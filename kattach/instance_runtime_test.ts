import {
  deepStrictEqual as assertEquals,
  rejects as assertRejects,
  throws as assertThrows,
} from "node:assert/strict";
import { Appmgr } from "../appqueue/mod.ts";
import type { Module } from "../ipc/mod.ts";
import { UserError, writeUstar } from "../lib/mod.ts";
import {
  chooseMachine,
  extractVkaos,
  HostPorts,
  makeInstanceDir,
  overlayName,
  SharedPrep,
  staleOverlays,
} from "./instance_runtime.ts";

function mod(name: string, machine?: "q35") {
  const appmgr = Appmgr.parse({
    format: "kaos-appmgr/1",
    readiness: { type: "serial", marker: `${name}: ready` },
    ...(machine ? { machine } : {}),
  });
  return { name, appmgr };
}

Deno.test("chooseMachine: microvm by default, q35 when set on the instance", () => {
  assertEquals(chooseMachine("microvm", [mod("vkaos"), mod("web")]), {
    machine: "microvm",
    why: "microvm: no module needs PCI",
  });
  assertEquals(chooseMachine("q35", [mod("vkaos"), mod("web")]), {
    machine: "q35",
    why: "q35: set on the instance",
  });
});

Deno.test("chooseMachine: a module declaring machine q35 puts the instance on q35", () => {
  assertEquals(chooseMachine("microvm", [mod("vkaos"), mod("gpu", "q35"), mod("nic", "q35")]), {
    machine: "q35",
    why: "q35: gpu, nic need PCI (over the instance's microvm setting)",
  });
  assertEquals(chooseMachine("q35", [mod("gpu", "q35")]).machine, "q35");
});

Deno.test("appmgr.aq: machine is optional and only q35", () => {
  const base = { format: "kaos-appmgr/1", readiness: { type: "tcp", port: 80 } };
  assertEquals(Appmgr.parse(base).machine, undefined);
  assertEquals(Appmgr.safeParse({ ...base, machine: "microvm" }).success, false);
  assertEquals(Appmgr.safeParse({ ...base, machine: "pc" }).success, false);
});

Deno.test("overlays are keyed by the module image's digest; older ones are stale", () => {
  const old = { name: "web", files: [{ part: "image", sha256: "a".repeat(64) }] };
  const updated = { name: "web", files: [{ part: "image", sha256: "b".repeat(64) }] };
  assertEquals(overlayName(old as never), `web-${"a".repeat(16)}.qcow2`);
  const keep = overlayName(updated as never);
  const files = [
    "web.qcow2", // a release that did not key overlays
    overlayName(old as never),
    keep,
    "web-admin.qcow2", // another module's
    "hello-0123456789abcdef.qcow2",
    "serial.log",
  ];
  assertEquals(staleOverlays(files, "web", keep), ["web.qcow2", `web-${"a".repeat(16)}.qcow2`]);
});

Deno.test("extractVkaos: concurrent starts share one extraction of the image", async () => {
  const dir = await Deno.makeTempDir({ prefix: "kaos-extract-" });
  try {
    const kernel = new TextEncoder().encode("a kernel");
    const initrd = new TextEncoder().encode("an initrd");
    await Deno.writeFile(
      `${dir}/vkaos.aqi`,
      writeUstar([{ path: "kernel", data: kernel }, { path: "initrd", data: initrd }]),
    );
    const vkaos = {
      name: "vkaos",
      dir,
      files: [{ part: "image", file: "vkaos.aqi", sha256: "ab".repeat(32), size: 0 }],
    } as unknown as Module;
    const starts = Array.from({ length: 10 }, () => extractVkaos(`${dir}/state`, vkaos));
    assertEquals(new Set(starts).size, 1); // one read of the image, not ten
    const paths = await starts[0];
    assertEquals(await Deno.readFile(paths.kernel), kernel);
    assertEquals(await Deno.readFile(paths.initrd), initrd);
    // Not a bzImage: no PVH ELF, and a marker so later starts do not look again.
    assertEquals(paths.pvh, null);
    assertEquals((await Deno.stat(`${paths.kernel}.no-pvh`)).size, 0);
    // Done: a later start finds the files (a new, already extracted answer).
    const later = extractVkaos(`${dir}/state`, vkaos);
    assertEquals(later === starts[0], false);
    assertEquals(await later, paths);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("extractVkaos: an image without an initrd fails the start saying so, and caches nothing", async () => {
  const dir = await Deno.makeTempDir({ prefix: "kaos-extract-" });
  try {
    await Deno.writeFile(
      `${dir}/vkaos.aqi`,
      writeUstar([{ path: "kernel", data: new TextEncoder().encode("a kernel") }]),
    );
    const vkaos = {
      name: "vkaos",
      dir,
      files: [{ part: "image", file: "vkaos.aqi", sha256: "cd".repeat(32), size: 0 }],
    } as unknown as Module;
    await assertRejects(
      () => extractVkaos(`${dir}/state`, vkaos),
      (err: Error) =>
        err instanceof UserError && /holds no initrd as a regular file/.test(err.message),
    );
    const cache = `${dir}/state/cache/vkaos/${"cd".repeat(8)}`;
    assertEquals([...Deno.readDirSync(cache)].map((e) => e.name), []);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("HostPorts: a port handed to one instance is not handed to another, even when it looks free", () => {
  // The kernel may give the same free port to listen(0) twice in a row: a scripted one does.
  const offers = [40001, 40001, 40001, 40002, 40002, 40003];
  const ports = new HostPorts({ free: () => offers.shift()! });
  assertEquals([ports.take("web-1"), ports.take("web-2"), ports.take("web-3")], [
    40001,
    40002,
    40003,
  ]);
  // Its previous boot's port comes back to the same instance; another instance gets a fresh one.
  const again = new HostPorts({ free: () => 40010 });
  const held = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (held.addr as Deno.NetAddr).port;
  held.close(); // free again, as a stopped guest's port is
  assertEquals(again.take("web-1", port), port);
  assertEquals(again.take("web-1", port), port);
  assertEquals(again.take("web-2", port), 40010);
});

Deno.test("SharedPrep: the launch gate opens once every start of the deploy arrived, once", async () => {
  const shared = new SharedPrep(["web-1", "web-2", "web-3"]);
  const opened: string[] = [];
  const gates = ["web-1", "web-2"].map((n) => shared.arrive(n).then(() => opened.push(n)));
  // Arriving again counts once: web-3 is still missing.
  void shared.arrive("web-1");
  await new Promise((r) => setTimeout(r, 0));
  assertEquals(opened, []);
  // web-3's start failed before the gate: the deploy marks it arrived all the same.
  await Promise.all([shared.arrive("web-3"), ...gates]);
  assertEquals(opened.sort(), ["web-1", "web-2"]);
  // Later arrivals find it open; a deploy of none never waits.
  await shared.arrive("web-2");
  await new SharedPrep([]).arrive("x");
});

Deno.test("SharedPrep: allAttached resolves once every start attached or failed, or at its cap", async () => {
  const shared = new SharedPrep(["web-1", "web-2"]);
  let done = false;
  const waiting = shared.allAttached(60_000).then(() => done = true);
  shared.attached("web-1");
  shared.attached("web-1"); // again: still one
  await new Promise((r) => setTimeout(r, 0));
  assertEquals(done, false);
  shared.attached("web-2"); // a failed start says so too
  await waiting;
  assertEquals(done, true);
  // One start stuck: the others wait no longer than the cap.
  const stuck = new SharedPrep(["web-1", "web-2"]);
  stuck.attached("web-1");
  const t0 = performance.now();
  await stuck.allAttached(50);
  const waited = performance.now() - t0;
  assertEquals(waited >= 45, true, `waited ${waited} ms`);
  await new SharedPrep([]).allAttached(60_000);
});

Deno.test("makeInstanceDir: true when made now (parents too, 0700), false when there; a file is an error", async () => {
  const root = await Deno.makeTempDir({ prefix: "kaos-instance-dir-" });
  try {
    const dir = `${root}/instances/web-1`;
    assertEquals(makeInstanceDir(dir), true);
    assertEquals((await Deno.stat(dir)).mode! & 0o777, 0o700);
    assertEquals((await Deno.stat(`${root}/instances`)).mode! & 0o777, 0o700);
    await Deno.writeTextFile(`${dir}/serial.log`, "an earlier boot\n");
    assertEquals(makeInstanceDir(dir), false);
    assertEquals(makeInstanceDir(`${root}/instances/web-2`), true);
    await Deno.writeTextFile(`${root}/instances/web-3`, "in the way\n");
    assertThrows(() => makeInstanceDir(`${root}/instances/web-3`), Deno.errors.AlreadyExists);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});
