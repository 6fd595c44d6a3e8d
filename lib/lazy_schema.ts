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
 * The stand-in is a Proxy of a copy of the value (its own properties and prototype): it is not
 * the built object (`X === built` is false, and a WeakMap keyed by one misses the other; the
 * value's methods act on the value); nothing in KaOS keys on schemas.
 */

/** A stand-in for `build()`'s value, with its type, built the first time it is used. */
export function lazySchema<T extends object>(build: () => T): T {
  const target = {} as T;
  const handler: ProxyHandler<T> = {};
  // At the first use the (empty) target becomes a copy of the value: its own properties and
  // prototype; the traps go, so later accesses reach the target without a call into JS (a
  // trap per access made parsing 10,000 instances about 20 % slower).
  const become = (): T => {
    const value = build();
    Object.defineProperties(target, Object.getOwnPropertyDescriptors(value));
    Object.setPrototypeOf(target, Object.getPrototypeOf(value));
    for (const trap of Object.keys(handler) as (keyof ProxyHandler<T>)[]) delete handler[trap];
    pending.delete(proxy);
    return target;
  };
  Object.assign(
    handler,
    {
      get: (_t, key, receiver) => Reflect.get(become(), key, receiver),
      set: (_t, key, v, receiver) => Reflect.set(become(), key, v, receiver),
      has: (_t, key) => Reflect.has(become(), key),
      ownKeys: () => Reflect.ownKeys(become()),
      getOwnPropertyDescriptor: (_t, key) => Reflect.getOwnPropertyDescriptor(become(), key),
      defineProperty: (_t, key, d) => Reflect.defineProperty(become(), key, d),
      deleteProperty: (_t, key) => Reflect.deleteProperty(become(), key),
      getPrototypeOf: () => Reflect.getPrototypeOf(become()),
    } satisfies ProxyHandler<T>,
  );
  const proxy = new Proxy(target, handler);
  pending.add(proxy);
  return proxy;
}

/** The stand-ins from {@linkcode lazySchema} not built yet. */
const pending = new WeakSet<object>();

/** Whether `x` is a stand-in from {@linkcode lazySchema} whose value is not built yet. */
export function lazySchemaPending(x: object): boolean {
  return pending.has(x);
}
