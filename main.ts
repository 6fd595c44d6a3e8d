/**
 * KaOS entry point: wires the real implementations together.
 *   kattach [--hosted] [--state DIR] [--storage-disks DEV,…]
 *                                      the daemon (PID 1 on the appliance); hosted mode offers
 *                                      `storage` only the listed disks (e.g. a test's loop devices)
 *   aq [--state DIR] COMMAND…          one one-line command against a running kattach
 *   sshd [--state DIR] [--port N]      the SSH front door (kattach supervises it)
 *   console [--state DIR] [--tty NAME] the login and menus on this terminal (kattach runs one per
 *                                      console tty on the appliance: tty1, ttyS0)
 */
import { runPublishCli } from "./appqueue/mod.ts";
import { runConsole, runOneLine, runSshdMain } from "./cli/mod.ts";
import { IpcClient } from "./ipc/mod.ts";
import { startKattach } from "./kattach/boot.ts";
import { runAppliance } from "./kattach/pid1.ts";

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

/** The command that runs this program again (for kattach's supervised services). */
function selfArgv(): string[] {
  const exe = Deno.execPath();
  return /(^|\/)deno$/.test(exe) ? [exe, "run", "-A", new URL(import.meta.url).pathname] : [exe];
}

function portOption(args: string[], name: string, fallback: number): number {
  const text = takeOption(args, name);
  const port = text === undefined ? fallback : Number(text);
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    console.error(`${name} takes a port number from 0 to 65535, not ${JSON.stringify(text)}`);
    Deno.exit(2);
  }
  return port;
}

async function kattach(args: string[]): Promise<void> {
  if (Deno.pid === 1 || args.includes("--appliance")) return await runAppliance(); // PID 1
  const hosted = args.includes("--hosted") || Deno.pid !== 1;
  const sshPort = portOption(args, "--ssh-port", Number(Deno.env.get("KAOS_SSH_PORT") ?? 1289));
  const disks = takeOption(args, "--storage-disks");
  const storageDisks = disks === undefined ? [] : disks.split(",").filter((d) => d !== "");
  if (storageDisks.some((d) => !/^\/dev\/[a-z][a-z0-9]{1,31}$/.test(d))) {
    console.error(`--storage-disks takes device nodes such as /dev/loop5,/dev/loop6, not ${disks}`);
    Deno.exit(2);
  }
  const dir = hosted ? stateDir(args.filter((a) => a !== "--hosted")) : "/var/lib/kaos";
  const running = await startKattach({
    mode: hosted ? "hosted" : "appliance",
    stateDir: dir,
    sshPort,
    selfArgv: selfArgv(),
    storageDisks,
  });
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

async function sshd(args: string[]): Promise<void> {
  await runSshdMain(args);
}

async function console_(args: string[]): Promise<void> {
  const tty = takeOption(args, "--tty");
  const dir = stateDir(args);
  await runConsole({ connect: () => IpcClient.connect(`${dir}/run`), tty });
  Deno.exit(0);
}

const [sub, ...rest] = Deno.args;
switch (sub) {
  case "kattach":
    await kattach(rest);
    break;
  case "aq":
    await aq(rest);
    break;
  case "sshd":
    await sshd(rest);
    break;
  case "console":
    await console_(rest);
    break;
  case "appqueue":
    Deno.exit(await runPublishCli(rest));
    break;
  default:
    console.error(
      "usage: main.ts kattach [--hosted] [--state DIR] [--ssh-port N] [--storage-disks DEV,…] |" +
        " aq [--state DIR] COMMAND… | sshd [--state DIR] [--port N] [--listen ADDR] |" +
        " console [--state DIR] [--tty NAME]",
    );
    Deno.exit(2);
}
