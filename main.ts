/**
 * KaOS entry point: wires the real implementations together. Each subcommand parses its options
 * strictly (lib/cli_args.ts: unknown options are refused, `--help` prints the usage and starts
 * nothing).
 *   kattach [--hosted] [--state DIR] [--ssh-port N] [--network user|bridged]
 *           [--storage-disks DEV,…]
 *                                                     the daemon (PID 1 on the appliance)
 *   aq [--state DIR] COMMAND…                         one one-line command against a running kattach
 *   sshd [--state DIR] [--port N] [--listen ADDR]     the SSH front door (kattach supervises it)
 *   console [--state DIR] [--tty NAME] [--wait-key]   the login and menus on this terminal
 *   appqueue keygen|pubkey|build|bundle …             the module author tool
 */
// Each subcommand imports only what it runs (dynamic imports below): the sshd and the console
// load no store, QEMU or module code, kattach no menus or SSH server (issue 13: memory).
import { firstWordIndex, parseCliOrExit, portNumber } from "./lib/cli_args.ts";
import { startMemoryLog } from "./lib/memory_log.ts";
import { FRONT_END_V8_FLAGS_OPTION, V8_FLAGS_OPTION } from "./lib/v8_flags.ts";

const DEFAULT_HOSTED_STATE = ".state";

const USAGE = `usage: main.ts SUBCOMMAND [OPTIONS]   (each subcommand answers --help)
  kattach [--hosted] [--state DIR] [--ssh-port N] [--storage-disks DEV,…]
                                                    run kattach (hosted unless PID 1)
  aq [--state DIR] COMMAND…                         run one one-line command (aq help)
  sshd [--state DIR] [--port N] [--listen ADDR]     the SSH CLI server
  console [--state DIR] [--tty NAME]                the login and menus on this terminal
  appqueue keygen|pubkey|build|bundle …             the module author tool
The state directory defaults to $KAOS_STATE, else ${DEFAULT_HOSTED_STATE}.`;

const KATTACH_USAGE =
  `usage: main.ts kattach [--hosted] [--state DIR] [--ssh-port N] [--network MODE]
         [--storage-disks DEV,…]
  Runs kattach. As PID 1 (or with --appliance) it is the appliance's init; otherwise it runs
  hosted with all state under one directory.
  --hosted          run as an ordinary process (the default unless PID 1)
  --state DIR       the state directory (default $KAOS_STATE, else ${DEFAULT_HOSTED_STATE})
  --ssh-port N      port of the SSH CLI on 127.0.0.1 (default $KAOS_SSH_PORT, else 1289; 0: none)
  --network MODE    user (default): user-mode guest NICs, the host's network is left alone;
                    bridged: manage links and firewall, SSH on 0.0.0.0 (in a network namespace
                    of its own, e.g. \`ip netns exec NS …\`)
  --storage-disks DEV,…
                    the only disks \`storage\` may use in hosted mode (e.g. a test's loop
                    devices /dev/loop5,/dev/loop6); none by default, never the machine's disks
  --appliance       run as the appliance's PID 1 (the launcher passes it)
  -h, --help        this text`;

const AQ_USAGE = `usage: main.ts aq [--state DIR] [--json] COMMAND…
  Sends one one-line command to the kattach of DIR (default $KAOS_STATE, else ${DEFAULT_HOSTED_STATE}).
  Options of the command itself follow it; \`aq help [WORD]\` lists the commands.`;

function stateDir(option: string | undefined): string {
  return option ?? Deno.env.get("KAOS_STATE") ?? DEFAULT_HOSTED_STATE;
}

/** The command that runs this program again (for kattach's supervised services). */
function selfArgv(v8FlagsOption = V8_FLAGS_OPTION): string[] {
  const exe = Deno.execPath();
  // The V8 flags of lib/v8_flags.ts: a small young generation, a tighter old one; the services
  // are front-ends that allocate little (about 16 MiB less RSS each under load, bench/memory.ts).
  return /(^|\/)deno$/.test(exe)
    ? [exe, "run", "-A", v8FlagsOption, new URL(import.meta.url).pathname]
    : [exe];
}

function usageError(message: string, usage: string): never {
  console.error(`Error: ${message}\n${usage}`);
  Deno.exit(2);
}

async function kattach(args: string[]): Promise<void> {
  const { values } = parseCliOrExit(args, {
    usage: KATTACH_USAGE,
    options: {
      hosted: { type: "boolean" },
      appliance: { type: "boolean" },
      state: { type: "string" },
      "ssh-port": { type: "string" },
      network: { type: "string" },
      "storage-disks": { type: "string" },
    },
  });
  const { catchStrayErrors, runAppliance } = await import("./kattach/pid1.ts");
  if (Deno.pid === 1 || values.appliance) return await runAppliance(); // PID 1
  const network = values.network ?? "user";
  if (network !== "user" && network !== "bridged") {
    usageError(`--network takes user or bridged, not ${network}`, KATTACH_USAGE);
  }
  if (network === "bridged" && Deno.uid() !== 0) {
    console.error(
      "Error: --network bridged needs root: it creates bridges, taps and a firewall on this host\n" +
        "Hint: run it as root inside a network namespace (unshare -n, ip netns exec NS …), " +
        "or leave --network out for user-mode networking",
    );
    Deno.exit(1);
  }
  const portText = values["ssh-port"] ?? Deno.env.get("KAOS_SSH_PORT") ?? "1289";
  const sshPort = portNumber(portText);
  if (sshPort === undefined) {
    usageError(`--ssh-port takes a port number from 0 to 65535, not ${portText}`, KATTACH_USAGE);
  }
  const disks = values["storage-disks"];
  const storageDisks = disks === undefined ? [] : disks.split(",").filter((d) => d !== "");
  if (storageDisks.some((d) => !/^\/dev\/[a-z][a-z0-9]{1,31}$/.test(d))) {
    usageError(
      `--storage-disks takes device nodes such as /dev/loop5, not ${disks}`,
      KATTACH_USAGE,
    );
  }
  const dir = stateDir(values.state);
  const log = (line: string) => console.error(`kattach: ${line}`);
  catchStrayErrors(log); // as on the appliance: a stray error is a logged bug, not an exit
  const { startKattach } = await import("./kattach/boot.ts");
  const running = await startKattach({
    mode: "hosted",
    stateDir: dir,
    sshPort,
    selfArgv: selfArgv(),
    // The sshd and the console with the front-ends' V8 flags (no TurboFan), as on the appliance.
    sshdSelfArgv: selfArgv(FRONT_END_V8_FLAGS_OPTION),
    consoleSelfArgv: selfArgv(FRONT_END_V8_FLAGS_OPTION),
    network,
    storageDisks,
  });
  const shutdown = async (signal: string) => {
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
  // The one-line runner alone, not cli/mod.ts: that loads the menus, prompts and SSH server
  // too, about 180 ms more of every `aq` start (issue 13).
  const { helpText, runOneLine } = await import("./cli/oneline.ts");
  const { IpcClient } = await import("./ipc/mod.ts");
  // The options before the first word are aq's (parsed strictly); the words from the first
  // one on are the one-line command, which has its own strict grammar.
  const split = firstWordIndex(args, ["state"]);
  const { values } = parseCliOrExit(args.slice(0, split), {
    usage: `${AQ_USAGE}\n\n${helpText()}`,
    options: { state: { type: "string" }, json: { type: "boolean" } },
  });
  const words = args.slice(args[split] === "--" ? split + 1 : split);
  const dir = stateDir(values.state);
  const enc = new TextEncoder();
  const code = await runOneLine(values.json ? [...words, "--json"] : words, {
    out: (t) => Deno.stdout.writeSync(enc.encode(t)),
    err: (t) => Deno.stderr.writeSync(enc.encode(t)),
    connect: () => IpcClient.connect(`${dir}/run`),
  });
  Deno.exit(code);
}

async function sshd(args: string[]): Promise<void> {
  const { sshdMain } = await import("./cli/mod.ts");
  const code = await sshdMain(args);
  if (code !== undefined) Deno.exit(code);
}

async function console_(args: string[]): Promise<void> {
  const { consoleMain } = await import("./cli/console.ts");
  // After a session the terminal's reader would hold the process: exit either way.
  Deno.exit(await consoleMain(args) ?? 0);
}

const [sub, ...rest] = Deno.args;
if (sub === "kattach" || sub === "sshd" || sub === "console") startMemoryLog(sub);
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
    Deno.exit(await (await import("./appqueue/mod.ts")).runPublishCli(rest));
    break;
  case "-h":
  case "--help":
  case "help":
    // No Deno.exit: a normal end lets Deno write the code cache (the image build warms it so).
    console.log(USAGE);
    break;
  default:
    console.error(sub === undefined ? USAGE : `Error: unknown subcommand ${sub}\n${USAGE}`);
    Deno.exit(2);
}
