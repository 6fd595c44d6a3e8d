/**
 * KaOS entry point: wires the real implementations together.
 *   kattach [--hosted] [--state DIR]   the daemon (PID 1 on the appliance)
 *   aq [--state DIR] COMMAND…          one one-line command against a running kattach
 */
import { runPublishCli } from "./appqueue/mod.ts";
import { runOneLine } from "./cli/mod.ts";
import { IpcClient } from "./ipc/mod.ts";
import { startKattach } from "./kattach/boot.ts";

const DEFAULT_HOSTED_STATE = ".state";

function takeOption(args: string[], name: string): string | undefined {
  const i = args.indexOf(name);
  if (i === -1) return undefined;
  const value = args[i + 1];
  if (value === undefined) {
    console.error(`${name} needs a value`);
    Deno.exit(2);
  }
  args.splice(i, 2);
  return value;
}

function stateDir(args: string[]): string {
  return takeOption(args, "--state") ?? Deno.env.get("KAOS_STATE") ?? DEFAULT_HOSTED_STATE;
}

async function kattach(args: string[]): Promise<void> {
  const hosted = args.includes("--hosted") || Deno.pid !== 1;
  const dir = hosted ? stateDir(args.filter((a) => a !== "--hosted")) : "/var/lib/kaos";
  const running = await startKattach({ mode: hosted ? "hosted" : "appliance", stateDir: dir });
  const shutdown = async (signal: string) => {
    if (!hosted) return; // PID 1 never exits on a signal
    console.error(`kattach: ${signal}: shutting down`);
    await running.stop();
    Deno.exit(0);
  };
  for (const sig of ["SIGTERM", "SIGINT", "SIGHUP"] as const) {
    Deno.addSignalListener(sig, () => void shutdown(sig));
  }
  console.error(`kattach: ready (state ${dir})`);
}

async function aq(args: string[]): Promise<void> {
  const dir = stateDir(args);
  const enc = new TextEncoder();
  const code = await runOneLine(args, {
    out: (t) => Deno.stdout.writeSync(enc.encode(t)),
    err: (t) => Deno.stderr.writeSync(enc.encode(t)),
    connect: () => IpcClient.connect(`${dir}/run`),
  });
  Deno.exit(code);
}

const [sub, ...rest] = Deno.args;
switch (sub) {
  case "kattach":
    await kattach(rest);
    break;
  case "aq":
    await aq(rest);
    break;
  case "appqueue":
    Deno.exit(await runPublishCli(rest));
    break;
  default:
    console.error("usage: main.ts kattach [--hosted] [--state DIR] | aq [--state DIR] COMMAND…");
    Deno.exit(2);
}
