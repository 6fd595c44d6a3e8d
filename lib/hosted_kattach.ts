/**
 * How the tests and the benchmarks run a hosted kattach from this tree: `deno run -A` with
 * kattach's V8 flags (as the appliance's launcher runs it), main.ts, `kattach --hosted --state
 * DIR` and what the caller adds. Here in lib/ because both tests/ and bench/ start it and neither
 * imports the other; the appliance runs kaos.js instead (kattach/pid1.ts' APPLIANCE_SELF_ARGV).
 */
import { KATTACH_V8_FLAGS_OPTION } from "./v8_flags.ts";

/** main.ts of this tree. */
const MAIN_TS = new URL("../main.ts", import.meta.url).pathname;

/** What {@linkcode kattachArgv} runs kattach with. */
export interface KattachArgvOptions {
  /** The state directory (`--state`). */
  state: string;
  /** `--ssh-port` (0: no sshd); without it kattach's default (KAOS_SSH_PORT, else 1289). */
  sshPort?: number;
  /** `--network` (without it kattach's default). */
  network?: string;
  /** More of kattach's options, after the others. */
  args?: readonly string[];
  /** The `deno run` options between `-A` and main.ts (default: kattach's V8 flags). */
  denoOptions?: readonly string[];
}

/** The argv of a hosted kattach: `deno run -A [options] main.ts kattach --hosted …`. */
export function kattachArgv(o: KattachArgvOptions): string[] {
  return [
    Deno.execPath(),
    ...["run", "-A", ...(o.denoOptions ?? [KATTACH_V8_FLAGS_OPTION])],
    ...[MAIN_TS, "kattach", "--hosted", "--state", o.state],
    ...(o.sshPort === undefined ? [] : ["--ssh-port", String(o.sshPort)]),
    ...(o.network === undefined ? [] : ["--network", o.network]),
    ...(o.args ?? []),
  ];
}
