import assert from "node:assert/strict";
import { lazySchemaPending } from "../lib/lazy_schema.ts";
import * as manifest from "../appqueue/manifest.ts";
import * as protocol from "./protocol.ts";
import * as schemas from "./schemas.ts";
import * as actionsAppqueue from "./actions_appqueue.ts";
import * as actionsAuth from "./actions_auth.ts";
import * as actionsFirewall from "./actions_firewall.ts";
import * as actionsGuests from "./actions_guests.ts";
import * as actionsNetwork from "./actions_network.ts";
import * as actionsStorage from "./actions_storage.ts";

/** The shared schemas, by module: name → value, as imported (before any test uses one). */
const modules = {
  "appqueue/manifest.ts": manifest,
  "ipc/protocol.ts": protocol,
  "ipc/schemas.ts": schemas,
  "ipc/actions_appqueue.ts": actionsAppqueue,
  "ipc/actions_auth.ts": actionsAuth,
  "ipc/actions_firewall.ts": actionsFirewall,
  "ipc/actions_guests.ts": actionsGuests,
  "ipc/actions_network.ts": actionsNetwork,
  "ipc/actions_storage.ts": actionsStorage,
};
/** Which exported objects were built by importing their modules (issue 13: none should be). */
const builtAtImport = Object.entries(modules).flatMap(([file, mod]) =>
  Object.entries(mod)
    .filter(([name, v]) => typeof v === "object" && !name.endsWith("Actions"))
    .filter(([, v]) => !lazySchemaPending(v))
    .map(([name]) => `${file} ${name}`)
);

Deno.test("shared schemas: importing them builds none (issue 13: kattach idle)", () => {
  assert.deepEqual(builtAtImport, []);
  // and there are some to check: every module exports schemas
  for (const [file, mod] of Object.entries(modules)) {
    assert(Object.values(mod).some((v) => typeof v === "object" && lazySchemaPending(v)), file);
  }
});

Deno.test("shared schemas: built at first use, they validate with their messages", () => {
  assert(lazySchemaPending(schemas.Vlan));
  const bad = schemas.Vlan.safeParse({ id: 4095 });
  assert(!bad.success);
  assert(bad.error.issues.some((i) => i.message === "VLAN ids run from 1 to 4094"));
  assert(!lazySchemaPending(schemas.Vlan));
  assert(!lazySchemaPending(schemas.VlanId)); // built with the schema made of it
  const name = schemas.ObjectName.safeParse("Web");
  assert(!name.success);
  assert.equal(
    name.error.issues[0].message,
    "names are 1-32 lower-case letters, digits or '-', starting with a letter",
  );
  assert.equal(manifest.ModuleKind.parse("app"), "app");
  assert.throws(() => manifest.Manifest.parse({ name: "x", extra: 1 }));
});
