import { deepStrictEqual as assertEquals, ok } from "node:assert/strict";
import { hostTscKhz, parseTscKhz } from "./tsc.ts";

Deno.test("parseTscKhz prefers the kernel log, else cpuinfo with constant_tsc", () => {
  const cpuinfo = "processor\t: 0\ncpu MHz\t\t: 2299.998\nflags\t\t: fpu tsc constant_tsc\n";
  assertEquals(parseTscKhz(cpuinfo), 2299998);
  assertEquals(parseTscKhz(cpuinfo, "[0.00] tsc: Detected 2400.000 MHz processor\n"), 2400000);
  assertEquals(
    parseTscKhz(
      cpuinfo,
      "[0.0] tsc: Detected 2400.000 MHz processor\n[1.2] tsc: Refined TSC clocksource calibration: 2399.912 MHz\n",
    ),
    2399912,
  );
});

Deno.test("parseTscKhz: no constant_tsc and no log line means unknown", () => {
  assertEquals(parseTscKhz("cpu MHz : 800.0\nflags : fpu tsc\n"), undefined);
  assertEquals(parseTscKhz(""), undefined);
  assertEquals(parseTscKhz("cpu MHz : 0\nflags : constant_tsc\n"), undefined);
});

Deno.test("hostTscKhz reads this host once and returns the same answer", async () => {
  const a = await hostTscKhz();
  ok(a === undefined || (Number.isInteger(a) && a > 0), String(a));
  assertEquals(await hostTscKhz(), a);
});
