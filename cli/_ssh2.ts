/**
 * The parts of npm:ssh2 the SSH server uses: its Server, the key parser and the key generator,
 * imported one by one. The package's index also loads its client, agents and HTTP agents, which
 * pull in Deno's node:http, node:https and node:child_process polyfills: about a quarter of the
 * sshd's start, which lies on the appliance's way to the SSH banner (seconds under TCG).
 *
 * The stubs first: in the sshd's bundle, ssh2's require() of what the server never runs answers
 * from them (cli/_ssh2_stubs.ts).
 */
import "./_ssh2_stubs.ts";
// @ts-types="./_ssh2_server.d.ts"
import Server from "ssh2/lib/server.js";
// @ts-types="./_ssh2_keys.d.ts"
import { parseKey } from "ssh2/lib/protocol/keyParser.js";
// @ts-types="./_ssh2_keys.d.ts"
import { generateKeyPairSync } from "ssh2/lib/keygen.js";

export type * from "./_ssh2.d.ts";
export { Server };

/** Key helpers, as ssh2's `utils`. */
export const utils = { parseKey, generateKeyPairSync };
