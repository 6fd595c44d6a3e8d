/**
 * node:crypto, loaded on first use (issue 13: memory). A static `import … from "node:crypto"`
 * loads Deno's Node crypto layer, with the streams, fs and net code it pulls in, when the process
 * starts: about 5 MiB of RSS and 1 MiB of JS heap that kattach idle never uses (it hashes only
 * at a login, a key or a module import). `process.getBuiltinModule` loads it synchronously the
 * first time it is called and returns the same module after that.
 */
import type * as NodeCrypto from "node:crypto";

let loaded: typeof NodeCrypto | undefined;

/** The node:crypto module, loaded the first time this is called. */
export function nodeCrypto(): typeof NodeCrypto {
  loaded ??= process.getBuiltinModule("node:crypto") as typeof NodeCrypto;
  return loaded;
}

/**
 * node:buffer's Buffer, loaded the first time this is called: a static import loads Deno's Node
 * layer at the start (about 1 MiB of RSS kattach idle otherwise does without).
 */
export function nodeBuffer(): typeof import("node:buffer").Buffer {
  return (process.getBuiltinModule("node:buffer") as typeof import("node:buffer")).Buffer;
}
