import { deepStrictEqual as assertEquals, ok as assert, throws } from "node:assert/strict";
import { closeFd, decodeWaitStatus, INHERITED_FD, listenUnixFd, spawnDetached } from "./spawn.ts";

/** The fields of /proc/PID/status named, as text ("Uid", "Groups", "CapEff", …). */
function procStatus(pid: number): Record<string, string> {
  const out: Record<string, string> = {};
  for (const line of Deno.readTextFileSync(`/proc/${pid}/status`).split("\n")) {
    const i = line.indexOf(":");
    if (i > 0) out[line.slice(0, i)] = line.slice(i + 1).trim();
  }
  return out;
}

/** `p`, with the event loop kept alive meanwhile (the SIGCHLD watch does not keep it). */
async function settled<T>(p: Promise<T>): Promise<T> {
  const timer = setInterval(() => {}, 1000);
  try {
    return await p;
  } finally {
    clearInterval(timer);
  }
}

/**
 * The descriptors of `sleep` once it sleeps (its own start opens and closes a few files: the
 * dynamic loader's, the locale's). x86-64: nanosleep is system call 35, clock_nanosleep 230.
 */
async function sleepingFds(pid: number): Promise<string[]> {
  for (let i = 0; i < 100; i++) {
    const call = Deno.readTextFileSync(`/proc/${pid}/syscall`).split(" ")[0];
    if (call === "35" || call === "230") break;
    await new Promise((r) => setTimeout(r, 20));
  }
  return [...Deno.readDirSync(`/proc/${pid}/fd`)].map((e) => e.name).sort();
}

async function waitFile(path: string, text: string): Promise<string> {
  for (let i = 0; i < 250; i++) {
    const got = await Deno.readTextFile(path).catch(() => "");
    if (got.includes(text)) return got;
    await new Promise((r) => setTimeout(r, 20));
  }
  throw new Error(`no "${text}" in ${path} within 5 s`);
}

Deno.test("spawnDetached: the program itself, in a session of its own, output appended to its log", async () => {
  const dir = await Deno.makeTempDir({ prefix: "kaos_spawn_" });
  try {
    await Deno.writeTextFile(`${dir}/out.log`, "before\n");
    const p = spawnDetached(["sleep", "30"], { cwd: dir, logFile: `${dir}/out.log` });
    const stat = Deno.readTextFileSync(`/proc/${p.pid}/stat`);
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    assertEquals(Number(fields[1]), Deno.pid, "our child: nothing ran in between");
    assertEquals(Number(fields[3]), p.pid, "a session of its own: a Ctrl-C to kattach spares it");
    assertEquals(Deno.readLinkSync(`/proc/${p.pid}/cwd`), dir);
    assertEquals(Deno.readLinkSync(`/proc/${p.pid}/fd/0`), "/dev/null");
    assertEquals(Deno.readLinkSync(`/proc/${p.pid}/fd/1`), `${dir}/out.log`);
    // No other descriptor of ours, with close-on-exec or without (the runtime has some without).
    assertEquals(await sleepingFds(p.pid), ["0", "1", "2"]);
    // No standard signal left ignored (SIGPIPE is, in Deno); glibc's own 32 and 33 may be.
    assertEquals(BigInt(`0x${procStatus(p.pid).SigIgn}`) & 0x7fffffffn, 0n);
    // This process' environment unless told otherwise.
    assert(
      Deno.readTextFileSync(`/proc/${p.pid}/environ`).includes(`PATH=${Deno.env.get("PATH")}\0`),
    );
    Deno.kill(p.pid, "SIGKILL");
    assertEquals(await settled(p.exited), { code: null, signal: "SIGKILL" });
    // `env`: that environment and nothing else.
    const clean = spawnDetached(["sleep", "30"], {
      cwd: dir,
      logFile: `${dir}/out.log`,
      env: { PATH: "/usr/bin:/bin", LC_ALL: "C" },
    });
    await sleepingFds(clean.pid); // its start is over
    assertEquals(
      Deno.readTextFileSync(`/proc/${clean.pid}/environ`).split("\0").filter((e) => e),
      ["PATH=/usr/bin:/bin", "LC_ALL=C"],
    );
    Deno.kill(clean.pid, "SIGKILL");
    await settled(clean.exited);
    const failed = spawnDetached(["sh", "-c", "echo oops >&2; echo out; exit 3"], {
      cwd: dir,
      logFile: `${dir}/out.log`,
    });
    assertEquals(await settled(failed.exited), { code: 3, signal: null });
    // Its output went to the log, after what was there, not to us.
    assertEquals(await waitFile(`${dir}/out.log`, "out"), "before\noops\nout\n");
    // Collected: no zombie left behind.
    assert(!(await Deno.stat(`/proc/${failed.pid}`).then(() => true, () => false)));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("spawnDetached: a program that cannot run is an error at once, naming it", async () => {
  const dir = await Deno.makeTempDir({ prefix: "kaos_spawn_" });
  try {
    throws(
      () => spawnDetached(["kaos-no-such-program"], { cwd: dir, logFile: `${dir}/l` }),
      /cannot start kaos-no-such-program: No such file or directory/,
    );
    throws(
      () => spawnDetached(["true"], { cwd: `${dir}/missing`, logFile: `${dir}/l` }),
      /cannot start true: No such file or directory \(the program, its directory/,
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test({
  name:
    "spawnDetached as root: the child has the user's ids, no groups, no capabilities; we keep ours",
  ignore: Deno.uid() !== 0,
  async fn() {
    const dir = await Deno.makeTempDir({ prefix: "kaos_spawn_" });
    const nobody = { uid: 65534, gid: 65534 };
    try {
      await Deno.chown(dir, nobody.uid, nobody.gid);
      const before = procStatus(Deno.pid);
      const p = spawnDetached(["sh", "-c", "echo $$ started; exec sleep 30"], {
        cwd: dir,
        logFile: `${dir}/qemu.log`,
        user: nobody,
      });
      await waitFile(`${dir}/qemu.log`, "started");
      const child = procStatus(p.pid);
      assertEquals(child.Uid, "65534\t65534\t65534\t65534");
      assertEquals(child.Gid, "65534\t65534\t65534\t65534");
      assertEquals(child.Groups, "");
      assertEquals([child.CapPrm, child.CapEff], ["0000000000000000", "0000000000000000"]);
      const log = await Deno.stat(`${dir}/qemu.log`);
      assertEquals([log.uid, log.gid], [nobody.uid, nobody.gid], "the log made by the user");
      // Every thread of ours, the one that spawned included, still has its ids and capabilities.
      for (const t of Deno.readDirSync(`/proc/${Deno.pid}/task`)) {
        const now = procStatus(Number(t.name));
        for (const f of ["Uid", "Gid", "Groups", "CapEff"]) {
          assertEquals(now[f], before[f], `thread ${t.name}: ${f}`);
        }
      }
      Deno.kill(p.pid, "SIGKILL");
      assertEquals((await settled(p.exited)).signal, "SIGKILL");
      // A user that cannot open the log: an error, and we are still root.
      await Deno.writeTextFile(`${dir}/root.log`, "");
      await Deno.chown(`${dir}/root.log`, 0, 0);
      await Deno.chmod(`${dir}/root.log`, 0o600);
      throws(
        () => spawnDetached(["true"], { cwd: dir, logFile: `${dir}/root.log`, user: nobody }),
        /cannot start true: Permission denied .* as uid 65534/,
      );
      assertEquals(procStatus(Deno.pid).Uid, before.Uid);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test("decodeWaitStatus: exit codes and signals", () => {
  assertEquals(decodeWaitStatus(0), { code: 0, signal: null });
  assertEquals(decodeWaitStatus(3 << 8), { code: 3, signal: null });
  assertEquals(decodeWaitStatus(9), { code: null, signal: "SIGKILL" });
  assertEquals(decodeWaitStatus(0x80 | 11), { code: null, signal: "SIGSEGV" }); // core dumped
  assertEquals(decodeWaitStatus(34), { code: null, signal: "signal 34" });
});

Deno.test("spawnDetached: inheritFd hands a listening socket over as fd 3, not under its own number", async () => {
  const dir = await Deno.makeTempDir({ prefix: "kaos_spawn_" });
  const fd = listenUnixFd(`${dir}/s.sock`);
  try {
    assert(fd > INHERITED_FD, `a fresh descriptor (${fd}) lies above 3 in a Deno process`);
    const ours = Deno.readLinkSync(`/proc/self/fd/${fd}`);
    const p = spawnDetached(["sleep", "30"], { cwd: dir, logFile: `${dir}/l`, inheritFd: fd });
    closeFd(fd);
    try {
      // Only fd 3 besides the standard streams: not our own copy (close-on-exec), nor any
      // descriptor of ours that lacks close-on-exec (the runtime has some).
      assertEquals(await sleepingFds(p.pid), ["0", "1", "2", "3"]);
      assertEquals(Deno.readLinkSync(`/proc/${p.pid}/fd/3`), ours, "fd 3 is our socket");
      // Ours is closed, the child's copy still listens: a connection waits in its backlog.
      const conn = await Deno.connect({ transport: "unix", path: `${dir}/s.sock` });
      conn.close();
    } finally {
      Deno.kill(p.pid, "SIGKILL");
      await settled(p.exited);
    }
    throws(
      () => spawnDetached(["true"], { cwd: dir, logFile: `${dir}/l`, inheritFd: 2 }),
      /cannot hand descriptor 2 on as 3/,
    );
    // A socket file left behind is replaced; any other file is not.
    closeFd(listenUnixFd(`${dir}/s.sock`));
    await Deno.writeTextFile(`${dir}/plain`, "");
    throws(() => listenUnixFd(`${dir}/plain`), /cannot listen at .*plain: Address already in use/);
    throws(() => listenUnixFd(`${dir}/${"x".repeat(120)}`), /not a usable unix socket path/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
