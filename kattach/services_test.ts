/** Tests of supervised services with real child processes (sh), short backoffs. */
import { deepStrictEqual as assertEquals, ok as assert } from "node:assert/strict";
import { Services } from "./services.ts";

async function until(check: () => boolean, what: () => string): Promise<void> {
  for (let i = 0; i < 300 && !check(); i++) await new Promise((r) => setTimeout(r, 20));
  assert(check(), what());
}

Deno.test("a service that exits is restarted with a doubling backoff; its output is logged", async () => {
  const lines: string[] = [];
  const s = new Services({ log: (l) => lines.push(l), minBackoffMs: 20, maxBackoffMs: 80 });
  s.start({
    name: "flaky",
    argv: ["sh", "-c", "echo out line; echo err line >&2; exit 3"],
    stdio: "parent-pipe",
  });
  // Four restarts logged (not just four starts: under load the fourth run may still be going).
  await until(
    () => lines.filter((l) => /status 3; restarting/.test(l)).length >= 4,
    () => lines.join("\n"),
  );
  await s.stop();
  assert(lines.includes("flaky: out line"), lines.join("\n"));
  assert(lines.includes("flaky: err line"), lines.join("\n"));
  const delays = lines.flatMap((l) =>
    l.match(/exited with status 3; restarting in (\d+) ms/)?.[1] ?? []
  )
    .map(Number);
  assertEquals(delays.slice(0, 4), [20, 40, 80, 80]);
});

Deno.test("goWhen: `go` on the child's stdin once the promise settles; a restarted child gets it at once", async () => {
  const lines: string[] = [];
  const s = new Services({ log: (l) => lines.push(l), minBackoffMs: 20 });
  let open = () => {};
  const gate = new Promise<void>((resolve) => open = resolve);
  s.start({
    name: "gated",
    argv: ["sh", "-c", 'echo waiting; read word; echo "got $word"; exit 1'],
    stdio: "parent-pipe",
    goWhen: gate,
  });
  await until(() => lines.includes("gated: waiting"), () => lines.join("\n"));
  // The child blocks reading its stdin, which nothing wrote while the gate is shut.
  assert(!lines.some((l) => l.startsWith("gated: got")), lines.join("\n"));
  open();
  await until(() => lines.filter((l) => l === "gated: got go").length >= 2, () => lines.join("\n"));
  await s.stop();
});

Deno.test("stop() ends running services and no restart follows", async () => {
  const lines: string[] = [];
  const s = new Services({ log: (l) => lines.push(l), minBackoffMs: 10 });
  s.start({ name: "sleeper", argv: ["sleep", "30"], stdio: "parent-pipe" });
  await until(() => s.list()[0].pid !== undefined, () => lines.join("\n"));
  await s.stop();
  const starts = s.list()[0].starts;
  await new Promise((r) => setTimeout(r, 100));
  assertEquals(s.list()[0], { name: "sleeper", pid: undefined, starts });
  assert(lines.some((l) => /sleeper: stopped \(killed by SIGTERM\)/.test(l)), lines.join("\n"));
});

Deno.test("a program that cannot start is retried, not fatal", async () => {
  const lines: string[] = [];
  const s = new Services({ log: (l) => lines.push(l), minBackoffMs: 10 });
  s.start({ name: "missing", argv: ["/nonexistent/kaos-prog"], stdio: "parent-pipe" });
  await until(
    () => lines.filter((l) => l.startsWith("missing: cannot start")).length >= 2,
    () => lines.join("\n"),
  );
  await s.stop();
});

Deno.test("a clean exit restarts after cleanExitRestartMs without growing the backoff", async () => {
  const lines: string[] = [];
  const s = new Services({ log: (l) => lines.push(l), minBackoffMs: 1000 });
  s.start({
    name: "console",
    argv: ["sh", "-c", "exit 0"],
    stdio: "parent-pipe",
    cleanExitRestartMs: 10,
  });
  await until(() => s.list()[0].starts >= 4, () => lines.join("\n"));
  await s.stop();
  const delays = lines.flatMap((l) => l.match(/status 0; restarting in (\d+) ms/)?.[1] ?? []);
  assertEquals(delays.slice(0, 3), ["10", "10", "10"]);
});
