/**
 * The AppQueue index (docs/appqueue.md): every release a queue offers, with each part's sha256
 * and size. It travels as `index.json`, a signed envelope (see signing.ts) whose payload is this
 * schema as JSON. Parts are fetched by digest from `parts/<sha256>`.
 */
import { z } from "zod";
import { describeIssues, UserError } from "../lib/errors.ts";
import { ImageFormat, ModuleKind, ModuleName, ModuleVersion } from "./manifest.ts";
import { MAX_PART_BYTES } from "./module_dir.ts";
import { openEnvelope } from "./signing.ts";

/** A lower-case hex sha256. */
export const Sha256 = z.string().regex(/^[0-9a-f]{64}$/, "a sha256 is 64 lower-case hex digits");

/** One part of a release: its digest and size. */
export const PartRef = z.strictObject({
  sha256: Sha256,
  size: z.number().int().min(0).max(MAX_PART_BYTES),
});
export type PartRef = z.infer<typeof PartRef>;

/** One release of one module in a queue. */
export const Release = z.strictObject({
  name: ModuleName,
  version: ModuleVersion,
  kind: ModuleKind,
  imageFormat: ImageFormat,
  description: z.string().max(400),
  releaseNotes: z.string().max(8000).default(""),
  parts: z.strictObject({
    manifest: PartRef,
    image: PartRef,
    climod: PartRef,
    appmgr: PartRef,
  }),
});
export type Release = z.infer<typeof Release>;

/** The signed payload of `index.json`. */
export const QueueIndex = z.strictObject({
  format: z.literal("kaos-appqueue-index/1"),
  /** Grows with each publication; kattach refuses an index older than one it has seen. */
  serial: z.number().int().min(1).max(Number.MAX_SAFE_INTEGER),
  generatedAt: z.string().max(64),
  /**
   * When the signature stops counting (ISO 8601 UTC): kattach refuses the index from then on,
   * so an old index cannot be replayed forever. The author tool sets it (`--expires-in DAYS`).
   */
  expiresAt: z.iso.datetime(),
  releases: z.array(Release).max(10000),
}).superRefine((idx, ctx) => {
  const seen = new Set<string>();
  for (const r of idx.releases) {
    const id = `${r.name}@${r.version}`;
    if (seen.has(id)) ctx.addIssue({ code: "custom", message: `${id} is listed twice` });
    seen.add(id);
  }
});
export type QueueIndex = z.infer<typeof QueueIndex>;

/** The largest `index.json` accepted, in bytes. */
export const MAX_INDEX_BYTES = 8 * 1024 * 1024;

/**
 * Verifies `index.json` bytes against the queue's key and returns the parsed index; an index
 * whose `expiresAt` has passed (at `now`, default the clock) is refused.
 */
export async function openIndex(
  bytes: Uint8Array,
  options: { publicKey: string; queue: string; now?: Date },
): Promise<QueueIndex> {
  const label = `the index of queue ${options.queue}`;
  if (bytes.length > MAX_INDEX_BYTES) {
    throw new UserError(`Cannot verify ${label}: larger than ${MAX_INDEX_BYTES} bytes`);
  }
  const { payload } = await openEnvelope(bytes, { trusted: [options.publicKey], label });
  let raw: unknown;
  try {
    raw = JSON.parse(payload);
  } catch (cause) {
    throw new UserError(`Invalid ${label}: the signed payload is not JSON`, { cause });
  }
  const parsed = QueueIndex.safeParse(raw);
  if (!parsed.success) {
    throw new UserError(`Invalid ${label}: ${describeIssues(parsed.error.issues)}`, {
      hint: "the queue was built by an incompatible tool; see docs/appqueue.md",
    });
  }
  const now = options.now ?? new Date();
  if (Date.parse(parsed.data.expiresAt) <= now.getTime()) {
    throw new UserError(
      `Cannot use queue ${options.queue}: its index (serial ${parsed.data.serial}) expired at ${parsed.data.expiresAt}`,
      {
        hint:
          "the publisher has to sign a fresh index; an expired one may be replayed by someone on the path",
        code: "expired",
      },
    );
  }
  return parsed.data;
}

/** Compares two versions (MAJOR.MINOR.PATCH[-pre]); a pre-release sorts before its release. */
export function compareVersions(a: string, b: string): number {
  const split = (v: string) => {
    const [core, pre] = v.split(/-(.*)/s, 2);
    return { nums: core.split(".").map(Number), pre: pre ?? "" };
  };
  const x = split(a), y = split(b);
  for (let i = 0; i < 3; i++) {
    const d = (x.nums[i] ?? 0) - (y.nums[i] ?? 0);
    if (d !== 0) return Math.sign(d);
  }
  if (x.pre === y.pre) return 0;
  if (x.pre === "") return 1;
  if (y.pre === "") return -1;
  return x.pre < y.pre ? -1 : 1;
}

/** The newest release of a module in an index (or the given version), or undefined. */
export function pickRelease(
  index: QueueIndex,
  name: string,
  version?: string,
): Release | undefined {
  const all = index.releases.filter((r) => r.name === name);
  if (version !== undefined) return all.find((r) => r.version === version);
  return all.sort((a, b) => compareVersions(b.version, a.version))[0];
}
