/**
 * startKattach with what the appliance's PID 1 hands it: a failed data partition (every change
 * refused, shown in system status), the password-reset boot entry, the image's built-in queue.
 */
import { deepStrictEqual as assertEquals, ok as assert, rejects } from "node:assert/strict";
import { UserError } from "../lib/mod.ts";
import { runAction } from "./actions/mod.ts";
import { startKattach } from "./boot.ts";
import { getAuthUser, setPasswordHash } from "./store_auth.ts";

const LOCAL = {
  name: "local",
  url: "file:///kaos/appqueue/local/",
  publicKey: "Xw0shnQNUaWAkSt4GKPpujZzqrJ5iv/NlaluxS4XHT0=",
};
const ctx = { signal: new AbortController().signal, progress: () => {} } as never;

Deno.test("a failed data partition: status says so and every change is refused", async () => {
  const dir = await Deno.makeTempDir({ prefix: "kaos-boot-appliance-" });
  const dataDisk = {
    state: "failed" as const,
    device: "/dev/sda3",
    detail: "the data partition /dev/sda3 (KAOSDATA) cannot be mounted",
  };
  const kt = await startKattach({ mode: "hosted", stateDir: dir, log: () => {}, dataDisk });
  try {
    const status = await runAction(kt.k, "system.status", {}, ctx) as { dataDisk: unknown };
    assertEquals(status.dataDisk, dataDisk);
    await rejects(
      () => runAction(kt.k, "vlan.add", { id: 10, name: "front", cidr: "10.0.10.0/24" }, ctx),
      (err: unknown) =>
        err instanceof UserError && /Cannot change anything: the data partition/.test(err.message),
    );
    assertEquals(await runAction(kt.k, "vlan.list", {}, ctx), []);
  } finally {
    await kt.stop();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("the built-in queue is there and read-only; the reset entry restores the default password", async () => {
  const dir = await Deno.makeTempDir({ prefix: "kaos-boot-appliance-" });
  try {
    let kt = await startKattach({
      mode: "hosted",
      stateDir: dir,
      log: () => {},
      builtinQueues: [LOCAL],
    });
    const queues = await runAction(kt.k, "appqueue.list", {}, ctx) as {
      name: string;
      url: string;
    }[];
    assertEquals(queues.find((q) => q.name === "local")?.url, LOCAL.url);
    for (const action of ["appqueue.set", "appqueue.del"] as const) {
      await rejects(
        () => runAction(kt.k, action, { name: "local", url: "http://example.org/" } as never, ctx),
        (err: unknown) =>
          err instanceof UserError && /built into the image \(read-only\)/.test(err.message),
      );
    }
    setPasswordHash(kt.k.store, "aqcli", "scrypt$1$1$1$x$y");
    assertEquals(getAuthUser(kt.k.store, "aqcli")?.mustChange, false);
    await kt.stop();

    kt = await startKattach({ mode: "hosted", stateDir: dir, log: () => {}, resetPassword: true });
    const user = getAuthUser(kt.k.store, "aqcli");
    assert(user);
    assertEquals([user.passwordHash, user.mustChange], ["", true]);
    await kt.stop();
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("instance starts and the built-in queue wait for the guest runtime, and fail with its reason", async () => {
  const dir = await Deno.makeTempDir({ prefix: "kaos-boot-appliance-" });
  let fail = (_: Error) => {};
  const runtime = new Promise<void>((_, reject) => fail = reject);
  runtime.catch(() => {});
  const kt = await startKattach({
    mode: "hosted",
    stateDir: dir,
    log: () => {},
    builtinQueues: [LOCAL],
    guestRuntime: () => runtime,
  });
  try {
    const store = kt.k.store;
    store.tx(() => {
      store.insertVmImage({
        name: "web",
        modules: [],
        configGroups: [],
        vlans: [],
        memoryMiB: 64,
        cpus: 1,
      });
      store.insertInstance({
        name: "web-1",
        vmimage: "web",
        state: "defined",
        autostart: false,
        restartPolicy: "never",
        nics: [],
      });
    });
    let settled = false;
    const start = runAction(kt.k, "instance.start", { name: "web-1" } as never, ctx);
    start.then(() => settled = true, () => settled = true);
    for (let i = 0; i < 5; i++) await new Promise((r) => setTimeout(r, 0));
    assert(!settled, "the start went on before the guest runtime was there");
    const why = "The guest runtime archive /dev/sda1:/boot/late.cpio.zst is corrupt: sha256 0…";
    fail(new UserError(why));
    await rejects(start, (err: unknown) => err instanceof UserError && err.message === why);
    const shown = await runAction(kt.k, "instance.show", { name: "web-1" } as never, ctx) as {
      state: string;
    };
    assertEquals(shown.state, "defined"); // no QEMU was started
    // The built-in queue comes with the same archives: reading it fails with the same reason.
    await rejects(
      runAction(kt.k, "module.install", { name: "hello", queue: "local" } as never, ctx),
      (err: unknown) => err instanceof UserError && err.message === why,
    );
  } finally {
    await kt.stop();
    await Deno.remove(dir, { recursive: true });
  }
});
