/** Small test assertions on node:assert (jsr's @std/assert is unreachable here). */
import nodeAssert from "node:assert/strict";

/** Fails unless the condition holds. */
export function assert(condition: unknown, message?: string): asserts condition {
  nodeAssert.ok(condition, message);
}

/** Deep strict equality. */
export function assertEquals<T>(actual: T, expected: T, message?: string): void {
  nodeAssert.deepStrictEqual(actual, expected, message);
}

/** Fails unless value is an instance of the class. */
export function assertInstanceOf<T>(
  value: unknown,
  // deno-lint-ignore no-explicit-any
  klass: abstract new (...args: any[]) => T,
): asserts value is T {
  nodeAssert.ok(value instanceof klass, `expected a ${klass.name}, got ${String(value)}`);
}

/** Awaits fn, expects it to reject with the class (and message part), returns the error. */
export async function assertRejects<E extends Error>(
  fn: () => Promise<unknown>,
  // deno-lint-ignore no-explicit-any
  klass: new (...args: any[]) => E,
  messageIncludes?: string,
): Promise<E> {
  try {
    await fn();
  } catch (err) {
    assertInstanceOf(err, klass);
    if (messageIncludes !== undefined) {
      nodeAssert.ok(err.message.includes(messageIncludes), `unexpected message: ${err.message}`);
    }
    return err;
  }
  throw new nodeAssert.AssertionError({ message: `expected a ${klass.name} rejection` });
}
