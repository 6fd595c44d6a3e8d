/** The console's login against a real hosted kattach, on a scripted terminal. */
import { deepStrictEqual as assertEquals, ok as assert } from "node:assert/strict";
import { IpcClient } from "../ipc/mod.ts";
import { TestKattach } from "../tests/_harness.ts";
import { Scripted } from "../tests/_scripted.ts";
import { consoleLogin } from "./session.ts";

Deno.env.set("KAOS_SSH_PORT", "0"); // no sshd for the kattach of these tests

Deno.test("console login: the forced change checks a new password right after its first entry", async () => {
  const k = await TestKattach.start();
  const s = new Scripted();
  const connect = () => IpcClient.connect(`${k.stateDir}/run`);
  const done = consoleLogin(s.terminal, { connect });
  /** What kattach answers to a login with `password`. */
  const verdict = async (password: string) => {
    const c = await connect();
    try {
      return (await c.call("auth.check", { user: "aqcli", password })).verdict;
    } finally {
      c.close();
    }
  };
  try {
    await s.waitFor("Password for aqcli");
    await s.line("kaos-0.1.0-dev"); // the release's default
    await s.waitFor("The default password must be changed before you continue.\n");
    await s.waitFor("New password");
    // Refused with kattach's reason at once and asked again: no retype of a refused password.
    let mark = s.text.length;
    await s.line("short");
    await s.waitFor(/shorter than 8 characters\nHint: use at least 8 characters\n/, mark);
    await s.waitFor("New password", s.text.lastIndexOf("Hint: use at least"));
    mark = s.text.length;
    await s.line("kaos-0.1.0-dev");
    await s.waitFor(/the release's default password\nHint: choose a password of your own\n/, mark);
    await s.waitFor("New password", s.text.lastIndexOf("Hint: choose"));
    assert(!s.text.includes("Retype"), s.text);
    // Nothing was changed by the checks: the default still logs in (and must still be changed).
    assertEquals(await verdict("kaos-0.1.0-dev"), "must-change");
    await s.line("n3w-passw0rd");
    await s.waitFor("Retype new password");
    await s.line("n3w-passw0rd");
    assertEquals(await done, true);
    await s.waitFor("Password changed.\n");
    assert(!s.text.includes("n3w-passw0rd"), "a password was echoed");
    assertEquals(await verdict("n3w-passw0rd"), "ok");
  } finally {
    s.terminal.close();
    await done.catch(() => {});
    await k.dispose();
  }
});
