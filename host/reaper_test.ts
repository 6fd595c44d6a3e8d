import { deepStrictEqual as assertEquals, ok as assert } from "node:assert/strict";
import {
  holdOwnChild,
  libcWaitpid,
  listProcesses,
  parseProcStat,
  Reaper,
  releaseOwnChild,
  zombieChildren,
} from "./reaper.ts";
import { outputOwned, spawnOwned } from "./run.ts";

Deno.test("parseProcStat: comm with spaces and parentheses", () => {
  const s = parseProcStat("4242 (my (odd) prog) Z 1 4242 4242 0 -1 4194572 0 0 0\n");
  assertEquals(s, { pid: 4242, comm: "my (odd) prog", state: "Z", ppid: 1 });
});

Deno.test("parseProcStat: rejects a line that is not a stat line", () => {
  let threw = false;
  try {
    parseProcStat("garbage");
  } catch {
    threw = true;
  }
  assert(threw);
});

Deno.test("zombieChildren: only zombies of the given parent", () => {
  const procs = [
    { pid: 10, comm: "a", state: "Z", ppid: 1 },
    { pid: 11, comm: "b", state: "S", ppid: 1 },
    { pid: 12, comm: "c", state: "Z", ppid: 7 },
  ];
  assertEquals(zombieChildren(procs, 1), [10]);
});

Deno.test("Reaper: reaps a zombie only when two scans in a row saw it", () => {
  let procs = [{ pid: 50, comm: "x", state: "Z", ppid: 1 }];
  const waited: number[] = [];
  const r = new Reaper({
    parent: 1,
    scan: () => procs,
    waitpid: (pid) => (waited.push(pid), 0),
  });
  assertEquals(r.tick(), []); // first sighting: maybe Deno's own child, leave it
  assertEquals(r.tick(), [50]);
  procs = [];
  assertEquals(r.tick(), []);
  assertEquals(waited, [50]);
  assertEquals(r.reaped, 1);
});

Deno.test("Reaper: a zombie that vanished between scans is not counted", () => {
  const r = new Reaper({
    parent: 1,
    scan: () => [{ pid: 60, comm: "x", state: "Z", ppid: 1 }],
    waitpid: () => null,
  });
  r.tick();
  assertEquals(r.tick(), []);
  assertEquals(r.reaped, 0);
});

/**
 * Makes this process a child subreaper (orphans of its children become its own children), or
 * stops being one. The test runner is shared by every test file: it must not stay a subreaper,
 * or other tests' orphans would linger as its zombies.
 */
function setSubreaper(on: boolean): void {
  const lib = Deno.dlopen("libc.so.6", {
    prctl: { parameters: ["i32", "u64", "u64", "u64", "u64"], result: "i32" },
  });
  const PR_SET_CHILD_SUBREAPER = 36;
  assertEquals(lib.symbols.prctl(PR_SET_CHILD_SUBREAPER, on ? 1n : 0n, 0n, 0n, 0n), 0);
  lib.close();
}

Deno.test({
  name: "Reaper: reaps a real orphan through libc waitpid, leaving Deno's own child to Deno",
  sanitizeResources: false,
  async fn() {
    setSubreaper(true);
    try {
      await reapAnOrphan();
    } finally {
      setSubreaper(false);
    }
  },
});

async function reapAnOrphan(): Promise<void> {
  // sh is Deno's child; the background sleep is orphaned when sh exits and re-parented to us.
  const out = await new Deno.Command("sh", {
    args: ["-c", "sleep 0.2 & echo $!; exit 7"],
    stdout: "piped",
  }).output();
  assertEquals(out.code, 7); // Deno still got its own child's status
  const orphan = Number(new TextDecoder().decode(out.stdout).trim());
  const isZombie = () => zombieChildren(listProcesses(), Deno.pid).includes(orphan);
  const until = Date.now() + 10_000;
  while (!isZombie() && Date.now() < until) await new Promise((r) => setTimeout(r, 50));
  assert(isZombie(), `orphan ${orphan} did not become our zombie`);

  const reaper = new Reaper({ parent: Deno.pid, waitpid: libcWaitpid() });
  assertEquals(reaper.tick(), []);
  assertEquals(reaper.tick(), [orphan]);
  assert(!isZombie(), "the zombie is still there after waitpid");
}

Deno.test({
  name: "Reaper: started, it scans when a child ends (SIGCHLD), not on a timer",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    setSubreaper(true);
    let scans = 0;
    const reaped: string[] = [];
    const reaper = new Reaper({
      parent: Deno.pid,
      waitpid: libcWaitpid(),
      intervalMs: 100,
      safetyMs: 600_000, // no scan of its own during the test
      scan: () => (scans++, listProcesses()),
      log: (line) => reaped.push(line),
    });
    const keepAlive = setInterval(() => {}, 50);
    try {
      reaper.start();
      await new Promise((r) => setTimeout(r, 300));
      const idle = scans;
      assert(idle <= 2, `${idle} scans with nothing ending`);
      // sh is Deno's child; its background sleep is orphaned to us and ends 0.3 s later.
      const out = await new Deno.Command("sh", {
        args: ["-c", "sleep 0.3 & echo $!"],
        stdout: "piped",
      }).output();
      const orphan = Number(new TextDecoder().decode(out.stdout).trim());
      const until = Date.now() + 10_000;
      while (!reaped.some((l) => l.includes(`reaped orphan ${orphan} `)) && Date.now() < until) {
        await new Promise((r) => setTimeout(r, 20));
      }
      assert(reaped.some((l) => l.includes(`reaped orphan ${orphan} `)), reaped.join("\n"));
      assert(!zombieChildren(listProcesses(), Deno.pid).includes(orphan));
      // Two SIGCHLDs (sh's, the orphan's) and the second look: a handful of scans, not one per
      // 100 ms for the whole wait.
      assert(scans - idle <= 6, `${scans - idle} scans`);
    } finally {
      reaper.stop();
      clearInterval(keepAlive);
      setSubreaper(false);
    }
  },
});

Deno.test("Reaper: never reaps a child the process waits for itself (runCommand's)", () => {
  const waited: number[] = [];
  const r = new Reaper({
    parent: 1,
    scan: () => [{ pid: 70, comm: "kill", state: "Z", ppid: 1 }],
    waitpid: (pid) => (waited.push(pid), 0),
  });
  holdOwnChild(70);
  try {
    for (let i = 0; i < 5; i++) assertEquals(r.tick(), []); // a starved event loop: still Deno's
  } finally {
    releaseOwnChild(70);
  }
  assertEquals(waited, []);
  r.tick();
  assertEquals(r.tick(), [70]); // once released and still a zombie, it is an orphan like any other
});

Deno.test("spawnOwned: the reaper leaves a child alone until Deno has collected its status", async () => {
  const child = spawnOwned("sleep", { args: ["0.2"], stdin: "null", stdout: "null" });
  const waited: number[] = [];
  const r = new Reaper({
    parent: 1,
    scan: () => [{ pid: child.pid, comm: "sleep", state: "Z", ppid: 1 }],
    waitpid: (pid) => (waited.push(pid), 0),
  });
  for (let i = 0; i < 5; i++) assertEquals(r.tick(), []); // seen as a zombie scan after scan
  assertEquals(waited, []);
  assert((await child.status).success); // Deno's own wait still gets the status
  await Promise.resolve(); // the release runs right after the status settles
  r.tick();
  assertEquals(r.tick(), [child.pid]); // released: a zombie with that pid would now be an orphan
});

Deno.test("outputOwned: output captured, a missing program is a rejection, not a throw", async () => {
  const out = await outputOwned("sh", { args: ["-c", "echo hi; echo err >&2"] });
  assertEquals(new TextDecoder().decode(out.stdout), "hi\n");
  assertEquals(new TextDecoder().decode(out.stderr), "err\n");
  const missing = outputOwned("/nonexistent/kaos-no-such-program");
  assert(missing instanceof Promise);
  await missing.then(
    () => assert(false, "resolved"),
    (err) => assert(err instanceof Deno.errors.NotFound),
  );
});
