/**
 * A shared zod schema (or an object of them) built on first use (issue 13: memory). The module
 * constants of ipc/schemas.ts, ipc/protocol.ts, appqueue/manifest.ts, vmimage/agent/protocol.ts
 * and the results of ipc/actions_*.ts are imported by name across the code; built at the start
 * they cost an idle kattach about 1,100 zod objects (1 MiB of heap) it never uses on an empty
 * store. `lazySchema(() => z.object(…))`
 * returns a stand-in with the same type that builds the value the first time anything reads it
 * (a property, `instanceof`, spreading, `in`) and forwards every access to it after that, so
 * `X.parse(…)`, `X.shape`, `X.extend(…)`, `z.object({ x: X })` and `{ ...X }` work as on the
 * value itself. A schema composed of others builds them when it is built, not before.
 *
 * The stand-in is a Proxy: it is not the built object (`X === built` is false, and a WeakMap
 * keyed by one misses the other); nothing in KaOS keys on schemas.
 */

/** A stand-in for `build()`'s value, with its type, built the first time it is used. */
export function lazySchema<T extends object>(build: () => T): T {
  let value: T | undefined;
  const get = (): T => {
    if (value === undefined) {
      value = build();
      pending.delete(proxy);
    }
    return value;
  };
  const proxy = new Proxy({} as T, {
    get: (_t, key) => Reflect.get(get(), key),
    set: (_t, key, v) => Reflect.set(get(), key, v),
    has: (_t, key) => Reflect.has(get(), key),
    ownKeys: () => Reflect.ownKeys(get()),
    // Configurable, as the (empty, extensible) target requires of a property it lacks.
    getOwnPropertyDescriptor: (_t, key) => {
      const d = Reflect.getOwnPropertyDescriptor(get(), key);
      return d && { ...d, configurable: true };
    },
    defineProperty: (_t, key, d) => Reflect.defineProperty(get(), key, d),
    deleteProperty: (_t, key) => Reflect.deleteProperty(get(), key),
    getPrototypeOf: () => Reflect.getPrototypeOf(get()),
  });
  pending.add(proxy);
  return proxy;
}

/** The stand-ins from {@linkcode lazySchema} not built yet. */
const pending = new WeakSet<object>();

/** Whether `x` is a stand-in from {@linkcode lazySchema} whose value is not built yet. */
export function lazySchemaPending(x: object): boolean {
  return pending.has(x);
}
