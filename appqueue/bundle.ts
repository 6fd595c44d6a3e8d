/**
 * Module bundles (docs/appqueue.md): one ustar file holding `bundle.json` (a signed envelope whose
 * payload lists the module and each part's sha256 and size) and the module's four files. Used to
 * carry a module offline (`module import FILE`). Reading is strict: exactly those entries, regular
 * files only, no `..` or absolute paths, a trusted signature and matching digests.
 */
import { z } from "zod";
import { describeIssues, UserError } from "../lib/errors.ts";
import { nodeCrypto } from "../lib/lazy_crypto.ts";
import { readUstar, type UstarFile, writeUstar } from "../lib/ustar.ts";
import { moduleFiles } from "./manifest.ts";
import { Release } from "./index_format.ts";
import { MAX_PART_BYTES, type ModuleSource } from "./module_dir.ts";
import { type KeyFile, openEnvelope, signPayload } from "./signing.ts";

/** The largest bundle file accepted, in bytes (it is read into memory). */
export const MAX_BUNDLE_BYTES = 1024 ** 3;

/** The name of the signed entry inside a bundle. */
export const BUNDLE_ENTRY = "bundle.json";

/** The signed payload of `bundle.json`. */
export const BundleManifest = z.strictObject({
  format: z.literal("kaos-bundle/1"),
  createdAt: z.string().max(64),
  release: Release,
});
export type BundleManifest = z.infer<typeof BundleManifest>;

/** A release record (as in an index) for a verified module directory. */
export function releaseOf(src: ModuleSource, releaseNotes = ""): Release {
  const ref = (part: string) => {
    const p = src.parts.find((x) => x.part === part)!;
    return { sha256: p.sha256, size: p.size };
  };
  return {
    name: src.manifest.name,
    version: src.manifest.version,
    kind: src.manifest.kind,
    imageFormat: src.manifest.image.format,
    description: src.manifest.description,
    releaseNotes,
    parts: {
      manifest: ref("manifest"),
      image: ref("image"),
      climod: ref("climod"),
      appmgr: ref("appmgr"),
    },
  };
}

/** Builds a signed bundle of a verified module directory. */
export async function writeBundle(
  src: ModuleSource,
  options: { key: KeyFile; releaseNotes?: string },
): Promise<Uint8Array> {
  const manifest: BundleManifest = {
    format: "kaos-bundle/1",
    createdAt: new Date().toISOString(),
    release: releaseOf(src, options.releaseNotes),
  };
  const envelope = await signPayload(options.key, JSON.stringify(manifest, null, 2));
  const files: UstarFile[] = [{
    path: BUNDLE_ENTRY,
    data: new TextEncoder().encode(JSON.stringify(envelope, null, 2) + "\n"),
  }];
  for (const p of src.parts) {
    files.push({ path: p.file, data: await Deno.readFile(`${src.dir}/${p.file}`) });
  }
  return writeUstar(files);
}

/** What {@linkcode extractBundle} verified. */
export interface ExtractedBundle {
  release: Release;
  /** The module directory written: `<into>/<name>`. */
  dir: string;
  /** The trusted key that signed the bundle. */
  publicKey: string;
}

/**
 * Verifies a bundle file against the trusted keys, then writes its four module files into a new
 * directory `<into>/<name>` (a module directory, see docs/modules.md). Throws a UserError naming
 * what failed; nothing is written unless every check passed.
 */
export async function extractBundle(
  path: string,
  options: { into: string; trusted: string[] },
): Promise<ExtractedBundle> {
  const label = `bundle ${path}`;
  const info = await Deno.stat(path).catch((cause) => {
    throw new UserError(`Cannot import ${path}: ${(cause as Error).message}`, {
      code: "not-found",
      cause,
    });
  });
  if (info.size > MAX_BUNDLE_BYTES) {
    throw new UserError(`Cannot import ${label}: larger than ${MAX_BUNDLE_BYTES} bytes`);
  }
  const entries = readUstar(await Deno.readFile(path), {
    label,
    maxFileBytes: MAX_PART_BYTES,
    maxTotalBytes: MAX_BUNDLE_BYTES,
    maxEntries: 16,
  });
  const signed = entries.find((e) => e.path === BUNDLE_ENTRY);
  if (!signed) {
    throw new UserError(`Cannot import ${label}: it has no ${BUNDLE_ENTRY}`, {
      hint: "build bundles with `main.ts appqueue bundle` (see docs/appqueue.md)",
    });
  }
  if (options.trusted.length === 0) {
    throw new UserError(`Cannot import ${label}: no AppQueue key is configured to trust it`, {
      hint: "set the publisher's key with `appqueue set NAME --key KEY` or `appqueue add`",
      code: "bad-signature",
    });
  }
  const { payload, publicKey } = await openEnvelope(signed.data, {
    trusted: options.trusted,
    label,
  });
  let raw: unknown;
  try {
    raw = JSON.parse(payload);
  } catch (cause) {
    throw new UserError(`Invalid ${label}: the signed payload is not JSON`, { cause });
  }
  const parsed = BundleManifest.safeParse(raw);
  if (!parsed.success) {
    throw new UserError(`Invalid ${label}: ${describeIssues(parsed.error.issues)}`);
  }
  const release = parsed.data.release;
  const names = moduleFiles(release.name);
  const wanted = new Map<string, { sha256: string; size: number }>([
    [names.manifest, release.parts.manifest],
    [names.image, release.parts.image],
    [names.climod, release.parts.climod],
    [names.appmgr, release.parts.appmgr],
  ]);
  for (const e of entries) {
    if (e.path !== BUNDLE_ENTRY && !wanted.has(e.path)) {
      throw new UserError(`Cannot import ${label}: unexpected entry ${JSON.stringify(e.path)}`, {
        hint: `a bundle holds exactly ${BUNDLE_ENTRY}, ${[...wanted.keys()].join(", ")}`,
      });
    }
  }
  const files: { file: string; data: Uint8Array }[] = [];
  for (const [file, ref] of wanted) {
    const e = entries.find((x) => x.path === file);
    if (!e) throw new UserError(`Cannot import ${label}: ${file} is missing`);
    if (e.data.length !== ref.size) {
      throw new UserError(
        `Cannot import ${label}: ${file} is ${e.data.length} bytes, the signed manifest says ${ref.size}`,
        { code: "digest-mismatch" },
      );
    }
    const got = nodeCrypto().createHash("sha256").update(e.data).digest("hex");
    if (got !== ref.sha256) {
      throw new UserError(
        `Cannot import ${label}: the sha256 of ${file} is ${got}, the signed manifest says ${ref.sha256}`,
        { hint: "the bundle was altered after signing", code: "digest-mismatch" },
      );
    }
    files.push({ file, data: e.data });
  }
  const dir = `${options.into}/${release.name}`;
  await Deno.mkdir(dir, { mode: 0o700 });
  for (const f of files) {
    await Deno.writeFile(`${dir}/${f.file}`, f.data, { mode: 0o644, createNew: true });
  }
  return { release, publicKey, dir };
}

/** True when `path` is a file (a bundle) rather than a directory (a module directory). */
export async function isBundleFile(path: string): Promise<boolean> {
  try {
    const info = await Deno.stat(path);
    return info.isFile;
  } catch {
    return false;
  }
}
