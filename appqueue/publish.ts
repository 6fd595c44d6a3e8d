/**
 * The module author's tool (`main.ts appqueue ...`): key generation, and building signed queues
 * and bundles from module directories. It writes files only; publishing them is copying the
 * output directory to any static HTTP server.
 */
import { parseCli } from "../lib/cli_args.ts";
import { UserError } from "../lib/errors.ts";
import { releaseOf, writeBundle } from "./bundle.ts";
import { QueueIndex, type Release } from "./index_format.ts";
import { readModuleDir } from "./module_dir.ts";
import { generateKeyFile, KeyFile, signPayload } from "./signing.ts";

/** Writes a fresh key file (0600, refused if it exists); returns it. */
export async function keygen(path: string): Promise<KeyFile> {
  const key = await generateKeyFile();
  try {
    await Deno.writeTextFile(path, JSON.stringify(key, null, 2) + "\n", {
      createNew: true,
      mode: 0o600,
    });
  } catch (cause) {
    throw new UserError(`Cannot write key file ${path}: ${(cause as Error).message}`, {
      hint: "keygen never overwrites a key; choose another path",
      cause,
    });
  }
  return key;
}

/** Reads a key file written by {@linkcode keygen}. */
export async function readKeyFile(path: string): Promise<KeyFile> {
  let raw: unknown;
  try {
    raw = JSON.parse(await Deno.readTextFile(path));
  } catch (cause) {
    throw new UserError(`Cannot read key file ${path}: ${(cause as Error).message}`, { cause });
  }
  const parsed = KeyFile.safeParse(raw);
  if (!parsed.success) throw new UserError(`Invalid key file ${path}`);
  return parsed.data;
}

/** Options of {@linkcode buildQueue}. */
export interface BuildQueueOptions {
  /** Output directory: `index.json` and `parts/<sha256>` are written there. */
  out: string;
  key: KeyFile;
  /** Release notes by `name@version`. */
  releaseNotes?: Record<string, string>;
  /** The index serial; default one more than the existing `out/index.json`'s, or 1. */
  serial?: number;
  /** Days the signed index stays valid (default {@linkcode DEFAULT_INDEX_DAYS}). */
  expiresInDays?: number;
}

/** How long an index stays valid unless the author says otherwise: re-sign before then. */
export const DEFAULT_INDEX_DAYS = 30;
/** The longest validity the author tool signs. */
export const MAX_INDEX_DAYS = 366;

/** Builds (or rebuilds) a queue directory from module directories; returns the index. */
export async function buildQueue(
  moduleDirs: string[],
  options: BuildQueueOptions,
): Promise<QueueIndex> {
  await Deno.mkdir(`${options.out}/parts`, { recursive: true });
  const releases: Release[] = [];
  for (const dir of moduleDirs) {
    const src = await readModuleDir(dir);
    const id = `${src.manifest.name}@${src.manifest.version}`;
    releases.push(releaseOf(src, options.releaseNotes?.[id] ?? ""));
    for (const p of src.parts) {
      const to = `${options.out}/parts/${p.sha256}`;
      await Deno.copyFile(`${dir}/${p.file}`, `${to}.tmp`);
      await Deno.rename(`${to}.tmp`, to);
    }
  }
  const days = options.expiresInDays ?? DEFAULT_INDEX_DAYS;
  if (!(days > 0 && days <= MAX_INDEX_DAYS)) {
    throw new UserError(
      `Cannot build the queue: --expires-in runs from 1 to ${MAX_INDEX_DAYS} days`,
    );
  }
  const now = new Date();
  const index = QueueIndex.parse({
    format: "kaos-appqueue-index/1",
    serial: options.serial ?? (await previousSerial(options.out)) + 1,
    generatedAt: now.toISOString(),
    expiresAt: new Date(now.getTime() + days * 86_400_000).toISOString(),
    releases,
  });
  const env = await signPayload(options.key, JSON.stringify(index, null, 2));
  const path = `${options.out}/index.json`;
  await Deno.writeTextFile(`${path}.tmp`, JSON.stringify(env, null, 2) + "\n");
  await Deno.rename(`${path}.tmp`, path);
  return index;
}

async function previousSerial(out: string): Promise<number> {
  try {
    const env = JSON.parse(await Deno.readTextFile(`${out}/index.json`));
    const serial = JSON.parse(env.payload).serial;
    return Number.isSafeInteger(serial) ? serial : 0;
  } catch {
    return 0;
  }
}

/** Builds a signed bundle file of one module directory. */
export async function buildBundle(
  moduleDir: string,
  options: { out: string; key: KeyFile; releaseNotes?: string },
): Promise<void> {
  const src = await readModuleDir(moduleDir);
  const bytes = await writeBundle(src, { key: options.key, releaseNotes: options.releaseNotes });
  await Deno.writeFile(`${options.out}.tmp`, bytes);
  await Deno.rename(`${options.out}.tmp`, options.out);
}

const USAGE = `usage:
  main.ts appqueue keygen KEYFILE
      write a new Ed25519 key pair (0600) and print its public key
  main.ts appqueue pubkey KEYFILE
      print the public key of a key file
  main.ts appqueue build --key KEYFILE --out DIR [--notes NOTES.json] [--expires-in DAYS] MODULE_DIR...
      build and sign a queue: DIR/index.json and DIR/parts/<sha256>
      (NOTES.json maps "name@version" to release notes; the index expires after DAYS,
      default 30, at most 366: rebuild and publish before then)
  main.ts appqueue bundle --key KEYFILE --out FILE [--notes TEXT] MODULE_DIR
      build and sign a module bundle for \`module import FILE\`
`;

/** Runs the author tool with command-line words; returns the exit status. */
export async function runPublishCli(args: string[]): Promise<number> {
  const parsed = parseCli(args, {
    usage: USAGE,
    options: {
      key: { type: "string" },
      out: { type: "string" },
      notes: { type: "string" },
      "expires-in": { type: "string" },
    },
    positionals: true,
  });
  if ("exit" in parsed) return parsed.exit;
  const flags = parsed.values;
  const words = parsed.positionals;
  const [sub, ...rest] = words;
  try {
    switch (sub) {
      case "keygen": {
        if (rest.length !== 1) return usageError("keygen takes KEYFILE");
        const key = await keygen(rest[0]);
        console.log(key.publicKey);
        return 0;
      }
      case "pubkey": {
        if (rest.length !== 1) return usageError("pubkey takes KEYFILE");
        console.log((await readKeyFile(rest[0])).publicKey);
        return 0;
      }
      case "build": {
        if (!flags.key || !flags.out || rest.length === 0) {
          return usageError("build needs --key, --out and module directories");
        }
        const notes = flags.notes ? JSON.parse(await Deno.readTextFile(flags.notes)) : undefined;
        const days = flags["expires-in"];
        if (days !== undefined && !/^\d{1,3}$/.test(days)) {
          return usageError(`--expires-in takes a number of days, not ${days}`);
        }
        const index = await buildQueue(rest, {
          out: flags.out,
          key: await readKeyFile(flags.key),
          releaseNotes: notes,
          ...(days === undefined ? {} : { expiresInDays: Number(days) }),
        });
        for (const r of index.releases) console.log(`${r.name} ${r.version} (${r.kind})`);
        console.log(
          `wrote ${flags.out}/index.json (serial ${index.serial}, expires ${index.expiresAt})`,
        );
        return 0;
      }
      case "bundle": {
        if (!flags.key || !flags.out || rest.length !== 1) {
          return usageError("bundle needs --key, --out and one module directory");
        }
        await buildBundle(rest[0], {
          out: flags.out,
          key: await readKeyFile(flags.key),
          releaseNotes: flags.notes,
        });
        console.log(`wrote ${flags.out}`);
        return 0;
      }
      default:
        return usageError(sub ? `unknown subcommand ${sub}` : "");
    }
  } catch (err) {
    if (err instanceof UserError) {
      console.error(`Error: ${err.message}${err.hint ? `\nHint: ${err.hint}` : ""}`);
      return 1;
    }
    throw err;
  }
}

function usageError(message: string): number {
  if (message) console.error(`Error: ${message}`);
  console.error(USAGE.trimEnd());
  return 2;
}
