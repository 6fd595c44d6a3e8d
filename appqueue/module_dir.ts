/**
 * Reads and verifies a module directory (docs/modules.md) without changing anything: the exact
 * set of files, their schemas, the image's format, and each part's sha256 and size.
 */
import { describeIssues, UserError } from "../lib/errors.ts";
import { nodeCrypto } from "../lib/lazy_crypto.ts";
import { readUstar } from "../lib/ustar.ts";
import { Appmgr, Climod, type ImageFormat, Manifest, moduleFiles } from "./manifest.ts";

/** The largest module part kattach accepts, in bytes. */
export const MAX_PART_BYTES = 2 * 1024 ** 3;

/** One verified part of a module. */
export interface ModulePart {
  part: "manifest" | "image" | "climod" | "appmgr";
  file: string;
  sha256: string;
  size: number;
}

/** A verified module directory. */
export interface ModuleSource {
  dir: string;
  manifest: Manifest;
  climod: Climod;
  appmgr: Appmgr;
  parts: ModulePart[];
}

/** Reads a module directory and verifies every part; throws a UserError naming what failed. */
export async function readModuleDir(dir: string): Promise<ModuleSource> {
  const where = `module directory ${dir}`;
  const stat = await Deno.lstat(dir).catch((err) => {
    throw new UserError(`Cannot import ${dir}: ${(err as Error).message}`, {
      hint: "give the path of a module directory (see docs/modules.md)",
      code: "not-found",
    });
  });
  if (!stat.isDirectory) {
    throw new UserError(`Cannot import ${dir}: not a directory`, {
      hint: "give the path of a module directory (see docs/modules.md)",
    });
  }
  const manifestBytes = await readPart(dir, "manifest.json", 64 * 1024);
  const manifest = parseJson(manifestBytes, "manifest.json", Manifest);
  const base = dir.replace(/\/+$/, "").split("/").pop();
  if (base !== manifest.name) {
    throw new UserError(
      `Invalid ${where}: the manifest names the module ${manifest.name}, the directory is ${base}`,
      { hint: "a module directory is named after its module (docs/modules.md)" },
    );
  }
  const names = moduleFiles(manifest.name);
  const expected = new Set(Object.values(names));
  for await (const entry of Deno.readDir(dir)) {
    if (!expected.has(entry.name)) {
      throw new UserError(`Invalid ${where}: unexpected file ${entry.name}`, {
        hint: `a module holds exactly ${[...expected].join(", ")}`,
      });
    }
  }
  const climodBytes = await readPart(dir, names.climod, 1024 * 1024);
  const climod = parseJson(climodBytes, names.climod, Climod);
  const appmgrBytes = await readPart(dir, names.appmgr, 1024 * 1024);
  const appmgr = parseJson(appmgrBytes, names.appmgr, Appmgr);
  if (manifest.kind === "app" && appmgr.service === undefined) {
    throw new UserError(`Invalid ${names.appmgr}: an app module must declare service.exec`, {
      hint: "see docs/modules.md",
    });
  }
  const image = await hashImage(dir, names.image, manifest.image.format);
  return {
    dir,
    manifest,
    climod,
    appmgr,
    parts: [
      part("manifest", names.manifest, manifestBytes),
      image,
      part("climod", names.climod, climodBytes),
      part("appmgr", names.appmgr, appmgrBytes),
    ],
  };
}

/** The sha256 of a file as lower-case hex, streamed. */
export async function sha256File(path: string): Promise<{ sha256: string; size: number }> {
  const hash = nodeCrypto().createHash("sha256");
  let size = 0;
  using file = await Deno.open(path);
  for await (const chunk of file.readable) {
    hash.update(chunk);
    size += chunk.length;
  }
  return { sha256: hash.digest("hex"), size };
}

function part(kind: ModulePart["part"], file: string, bytes: Uint8Array): ModulePart {
  return {
    part: kind,
    file,
    sha256: nodeCrypto().createHash("sha256").update(bytes).digest("hex"),
    size: bytes.length,
  };
}

async function regularFile(dir: string, name: string, maxBytes: number): Promise<Deno.FileInfo> {
  const path = `${dir}/${name}`;
  const info = await Deno.lstat(path).catch(() => {
    throw new UserError(`Invalid module: ${name} is missing from ${dir}`, {
      hint: "a module holds manifest.json, <name>.aqi, climod.aq and appmgr.aq (docs/modules.md)",
    });
  });
  if (!info.isFile) {
    throw new UserError(`Invalid module: ${name} is not a regular file`, {
      hint: "links and special files are refused; copy the real file in",
    });
  }
  if (info.size > maxBytes) {
    throw new UserError(`Invalid module: ${name} is larger than ${maxBytes} bytes`);
  }
  return info;
}

async function readPart(dir: string, name: string, maxBytes: number): Promise<Uint8Array> {
  await regularFile(dir, name, maxBytes);
  return await Deno.readFile(`${dir}/${name}`);
}

function parseJson<T>(
  bytes: Uint8Array,
  name: string,
  schema: {
    safeParse(v: unknown): {
      success: boolean;
      data?: T;
      error?: { issues: { path: PropertyKey[]; message: string }[] };
    };
  },
): T {
  let raw: unknown;
  try {
    raw = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(bytes));
  } catch (err) {
    throw new UserError(`Invalid ${name}: not valid JSON (${(err as Error).message})`, {
      hint: "see docs/modules.md for the format",
    });
  }
  const parsed = schema.safeParse(raw);
  if (!parsed.success) {
    throw new UserError(`Invalid ${name}: ${describeIssues(parsed.error!.issues)}`, {
      hint: "see docs/modules.md for the format",
    });
  }
  return parsed.data as T;
}

async function hashImage(dir: string, name: string, format: ImageFormat): Promise<ModulePart> {
  const info = await regularFile(dir, name, MAX_PART_BYTES);
  if (info.size === 0) throw new UserError(`Invalid module: the image ${name} is empty`);
  const path = `${dir}/${name}`;
  if (format === "vkaos-tar") {
    const bytes = await Deno.readFile(path);
    const entries = readUstar(bytes, { label: name });
    const got = entries.map((e) => e.path).sort().join(",");
    if (got !== "initrd,kernel") {
      throw new UserError(
        `Invalid module: ${name} must hold exactly the files kernel and initrd, not ${
          got || "nothing"
        }`,
      );
    }
    return part("image", name, bytes);
  }
  using file = await Deno.open(path);
  const head = new Uint8Array(2048);
  let got = 0;
  while (got < head.length) {
    const n = await file.read(head.subarray(got));
    if (n === null) break;
    got += n;
  }
  const ok = format === "squashfs"
    ? got >= 4 && new TextDecoder().decode(head.subarray(0, 4)) === "hsqs"
    : got >= 1082 && head[1080] === 0x53 && head[1081] === 0xef;
  if (!ok) {
    throw new UserError(`Invalid module: ${name} is not a ${format} image`, {
      hint: `build it with ${format === "ext4" ? "mkfs.ext4 -d" : "mksquashfs"}`,
    });
  }
  const { sha256, size } = await sha256File(path);
  return { part: "image", file: name, sha256, size };
}
