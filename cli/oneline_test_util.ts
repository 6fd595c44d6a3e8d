/** Test helper: runs a one-line command with its output collected. */
import type { IpcClient } from "../ipc/client.ts";
import type { Instance } from "../ipc/mod.ts";
import { runOneLine } from "./oneline.ts";

/** How a one-line command ended: its exit code and what it wrote to stdout and stderr. */
export interface LineResult {
  code: number;
  out: string;
  err: string;
}

/** An instance record as kattach sends it, without its state (the CLI's render tests). */
export const INSTANCE_BASE: Omit<Instance, "state"> = {
  name: "web-1",
  vmimage: "web",
  autostart: false,
  restartPolicy: "on-failure",
  nics: [],
  createdAt: "2026-11-27T12:00:00.000Z",
};

/** A `connect` for commands that must be answered before kattach is asked: it refuses. */
export function refuseConnect(): Promise<IpcClient> {
  return Promise.reject(new Error("kattach must not be asked"));
}

/** Runs `words` as a one-line command reaching kattach through `connect` (default: refused). */
export async function runLine(
  words: string[],
  connect: () => Promise<IpcClient> = refuseConnect,
): Promise<LineResult> {
  let out = "";
  let err = "";
  const code = await runOneLine(words, {
    out: (t) => out += t,
    err: (t) => err += t,
    connect,
  });
  return { code, out, err };
}
