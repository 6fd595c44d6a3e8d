/** The test harness cannot hang: each wait has a deadline and fails saying what it waited for. */
import assert from "node:assert/strict";
import { DeadlineError, run, waitFor, withDeadline } from "./_util.ts";
import { TestKattach } from "./_harness.ts";

Deno.test("harness: run kills a command past its deadline and names it", async () => {
  await assert.rejects(
    run(["sleep", "30"], { timeoutMs: 300 }),
    (err) => err instanceof DeadlineError && /waiting for `sleep 30` to finish/.test(err.message),
  );
});

Deno.test("harness: waitFor gives up on a check that never holds, or hangs, saying on what", async () => {
  await assert.rejects(
    waitFor(() => false, () => "the moon to turn blue", { timeoutMs: 300, intervalMs: 50 }),
    (err) => err instanceof DeadlineError && /waiting for: the moon to turn blue/.test(err.message),
  );
  await assert.rejects(
    waitFor(() => new Promise<boolean>(() => {}), () => "a hung check", { timeoutMs: 300 }),
    (err) => err instanceof DeadlineError && /waiting for: a hung check/.test(err.message),
  );
});

Deno.test("harness: withDeadline names what it waited for", async () => {
  await assert.rejects(
    withDeadline(new Promise(() => {}), 100, "nothing at all"),
    /gave up after 0.1 s waiting for nothing at all/,
  );
  assert.equal(await withDeadline(Promise.resolve(7), 100, "seven"), 7);
});

Deno.test("harness: a kattach that exits at start fails restart() with its stderr", async () => {
  const dir = await Deno.makeTempDir({ prefix: "kaos-harness-test-" });
  const k = new TestKattach(dir, { args: ["--no-such-option"] });
  try {
    await assert.rejects(k.restart(), (err: Error) => {
      assert.match(err.message, /kattach exited \(code [1-9]\d*\) before it was ready/);
      assert.match(err.message, /no-such-option/, "the reason from stderr is in the error");
      return true;
    });
    // A failed start leaves nothing behind: a second try starts (and fails) again.
    await assert.rejects(k.restart(), /kattach exited/);
  } finally {
    await k.dispose();
  }
});
