/** The test harness cannot hang: each wait has a deadline and fails saying what it waited for. */
import assert from "node:assert/strict";
import { DeadlineError, run, waitFor, withDeadline } from "./_util.ts";

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
