/**
 * A hosted kattach context for tests that drive kattach's modules directly (no `startKattach`):
 * the store and state directory given, TCG, and the lines it logs kept. Private to tests.
 */
import type { Kattach } from "./context.ts";
import type { Store } from "./store.ts";

/** The context, with `extra` (a firewall host, …) on top, and the lines it logs. */
export function testContext(
  store: Store,
  stateDir: string,
  extra: Partial<Kattach> = {},
): { k: Kattach; lines: string[] } {
  const lines: string[] = [];
  const k: Kattach = {
    store,
    stateDir,
    mode: "hosted",
    startedAt: Date.now(),
    accel: { kind: "tcg", reason: "test" },
    log: (l) => lines.push(l),
    ...extra,
  };
  return { k, lines };
}
