/**
 * The QMP client against real QEMU (TCG, no KVM): handshake, typed commands, run-state
 * transitions with their events, QMP error classes, quit, and QEMU dying mid-command.
 */
import { assert, assertEquals, assertRejects } from "./_assert.ts";
import {
  cont,
  humanMonitorCommand,
  queryBalloon,
  queryBlockstats,
  queryCommands,
  queryCpusFast,
  queryMemorySizeSummary,
  queryStatus,
  queryVersion,
  quit,
  stop,
  systemPowerdown,
  systemReset,
} from "./commands.ts";
import { QmpClosedError, QmpError } from "./errors.ts";
import { QmpMonitor } from "./monitor.ts";

interface Qemu {
  child: Deno.ChildProcess;
  monitor: QmpMonitor;
  dir: string;
}

/** Starts QEMU with a QMP socket in a temp dir and connects to it; `body` gets both. */
async function withQemu(machine: string[], body: (q: Qemu) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "kaos-qmp-qemu-" });
  const sock = `${dir}/qmp.sock`;
  const child = new Deno.Command("qemu-system-x86_64", {
    args: [
      ...machine,
      "-accel",
      "tcg",
      "-nodefaults",
      "-no-user-config",
      "-display",
      "none",
      "-qmp",
      `unix:${sock},server=on,wait=off`,
    ],
    stdin: "null",
    stdout: "null",
    stderr: "inherit",
  }).spawn();
  let monitor: QmpMonitor | undefined;
  try {
    monitor = await QmpMonitor.connect(sock, { timeoutMs: 10_000 });
    await body({ child, monitor, dir });
  } finally {
    await monitor?.close();
    try {
      child.kill("SIGKILL");
    } catch {
      // Already exited.
    }
    await child.status;
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("real QEMU -M none: version, commands, errors, HMP, blockstats, quit", async () => {
  await withQemu(
    ["-M", "none", "-drive", "if=none,id=d0,file=null-co://,format=raw"],
    async ({ child, monitor }) => {
      const version = await queryVersion(monitor);
      assertEquals(version.qemu, monitor.greeting.QMP.version.qemu);
      assert(version.qemu.major >= 7, JSON.stringify(version));

      const names = await queryCommands(monitor);
      for (const name of ["query-status", "cont", "stop", "quit", "human-monitor-command"]) {
        assert(names.includes(name), `${name} missing from query-commands`);
      }

      const err = await assertRejects(() => monitor.execute("no-such-command"), QmpError);
      assertEquals([err.class, err.command], ["CommandNotFound", "no-such-command"]);
      const balloon = await assertRejects(() => queryBalloon(monitor), QmpError);
      assertEquals(balloon.class, "DeviceNotActive");
      const bad = await assertRejects(
        () => monitor.execute("query-status", { bogus: 1 }),
        QmpError,
      );
      assertEquals(bad.class, "GenericError");

      const info = await humanMonitorCommand(monitor, "info version");
      assert(
        info.startsWith(`${version.qemu.major}.${version.qemu.minor}.${version.qemu.micro}`),
        info,
      );

      const stats = await queryBlockstats(monitor);
      assertEquals(stats.map((s) => s.device), ["d0"]);
      assertEquals(stats[0].stats.rdBytes, 0);

      // Many different commands in flight at once each get their own reply (a mix-up would
      // fail the typed replies' validation).
      const replies = await Promise.all(Array.from({ length: 25 }, (_, i) => {
        switch (i % 4) {
          case 0:
            return queryVersion(monitor).then((v) => `v${v.qemu.major}`);
          case 1:
            return queryStatus(monitor).then((s) => s.status);
          case 2:
            return queryBlockstats(monitor).then((b) => b[0].device);
          default:
            return queryCommands(monitor).then((c) => c.includes("quit"));
        }
      }));
      assertEquals(
        replies,
        Array.from(
          { length: 25 },
          (_, i) => [`v${version.qemu.major}`, "running", "d0", true][i % 4],
        ),
      );

      const shutdown = monitor.waitEvent("SHUTDOWN");
      await quit(monitor);
      assertEquals((await shutdown).data, { guest: false, reason: "host-qmp-quit" });
      assertEquals(monitor.isClosed, true);
      const status = await child.status;
      assertEquals(status.code, 0);
    },
  );
});

Deno.test("real QEMU -M pc -S: status transitions with STOP/RESUME/RESET/POWERDOWN", async () => {
  await withQemu(["-M", "pc", "-S", "-m", "64", "-smp", "2"], async ({ child, monitor }) => {
    assertEquals(await queryStatus(monitor), { status: "prelaunch", running: false });

    const cpus = await queryCpusFast(monitor);
    assertEquals(cpus.map((c) => [c.cpuIndex, c.target]), [[0, "x86_64"], [1, "x86_64"]]);
    assert(cpus.every((c) => c.threadId > 0 && c.qomPath.startsWith("/machine/")));
    assertEquals((await queryMemorySizeSummary(monitor)).baseMemory, 64 * 1024 * 1024);

    const events = monitor.events();
    const resumed = monitor.waitEvent("RESUME");
    await cont(monitor);
    await resumed;
    assertEquals(await queryStatus(monitor), { status: "running", running: true });

    const stopped = monitor.waitEvent("STOP");
    await stop(monitor);
    await stopped;
    assertEquals(await queryStatus(monitor), { status: "paused", running: false });

    const reset = monitor.waitEvent("RESET", { predicate: (e) => e.data.guest === false });
    await systemReset(monitor);
    assertEquals((await reset).data.reason, "host-qmp-system-reset");

    const powerdown = monitor.waitEvent("POWERDOWN");
    await systemPowerdown(monitor);
    await powerdown;

    const seen: string[] = [];
    for await (const e of events) {
      seen.push(e.event);
      if (e.event === "POWERDOWN") break;
    }
    assertEquals(seen, ["RESUME", "STOP", "RESET", "POWERDOWN"]);
    assert(
      (await humanMonitorCommand(monitor, "info status")).includes("paused"),
      "HMP agrees the VM is paused",
    );

    await quit(monitor);
    assertEquals((await child.status).code, 0);
  });
});

Deno.test("real QEMU killed mid-command: pending commands reject with QmpClosedError", async () => {
  await withQemu(["-M", "none"], async ({ child, monitor }) => {
    assertEquals((await queryStatus(monitor)).running, true);
    // A frozen QEMU cannot answer; killing it then must fail the command, not hang it.
    child.kill("SIGSTOP");
    const pending = assertRejects(() => queryStatus(monitor), QmpClosedError);
    const waiting = assertRejects(() => monitor.waitEvent("STOP"), QmpClosedError);
    child.kill("SIGKILL");
    await pending;
    await waiting;
    await monitor.closed;
    assertEquals((await child.status).signal, "SIGKILL");
  });
});
