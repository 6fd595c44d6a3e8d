import { deepStrictEqual as assertEquals } from "node:assert/strict";
import { kattachArgv } from "./hosted_kattach.ts";
import { KATTACH_V8_FLAGS_OPTION } from "./v8_flags.ts";

const MAIN = new URL("../main.ts", import.meta.url).pathname;

Deno.test("kattachArgv: kattach's V8 flags, main.ts, --hosted --state; the options in order", () => {
  const deno = Deno.execPath();
  assertEquals(kattachArgv({ state: "/s" }), [
    ...[deno, "run", "-A", KATTACH_V8_FLAGS_OPTION, MAIN, "kattach", "--hosted", "--state", "/s"],
  ]);
  assertEquals(
    kattachArgv({
      state: "/s",
      sshPort: 0,
      network: "bridged",
      args: ["--storage-disks", "/dev/loop9"],
      denoOptions: [],
    }),
    [
      ...[deno, "run", "-A", MAIN, "kattach", "--hosted", "--state", "/s", "--ssh-port", "0"],
      ...["--network", "bridged", "--storage-disks", "/dev/loop9"],
    ],
  );
});
