/**
 * Group commit: the store writes asked for in the same turn of the event loop go in one write
 * transaction. The 20 starts of a deploy (each: its state, then its pid, forwards and health)
 * commit together instead of one by one on kattach's only JS thread (issue 13). Each write stays
 * all or nothing on its own (a savepoint): one that throws rolls back its own changes only.
 */
import type { Store } from "./store.ts";

interface Pending {
  write: () => void;
  durable: boolean;
  resolve(): void;
  reject(err: unknown): void;
}

/** Queues writes and commits each turn's in one transaction. */
export class GroupCommit {
  #store: Store;
  #pending: Pending[] = [];

  constructor(store: Store) {
    this.#store = store;
  }

  /**
   * Runs `write` in the next group's transaction; resolves once it is committed, rejects with
   * `write`'s own error (its changes rolled back, the others' kept), or with the transaction's
   * (every write of the group failed). `durable: false` commits without waiting for the disk (see
   * Store.tx), unless a durable write shares the group.
   */
  commit(write: () => void, o: { durable: boolean }): Promise<void> {
    const { promise, resolve, reject } = Promise.withResolvers<void>();
    if (this.#pending.length === 0) setTimeout(() => this.flush(), 0);
    this.#pending.push({ write, durable: o.durable, resolve, reject });
    return promise;
  }

  /**
   * Commits the writes queued so far now instead of at the turn's timer: for a caller about to
   * wait for its own write when nothing else of the turn is to come (a start whose files are
   * ready: the timer would cost it up to a millisecond before its QEMU is spawned). Nothing
   * queued: nothing happens.
   */
  flush(): void {
    if (this.#pending.length > 0) this.#flush();
  }

  #flush(): void {
    const group = this.#pending;
    this.#pending = [];
    const errors: (unknown | null)[] = [];
    const store = this.#store;
    try {
      store.tx(() => {
        for (const { write } of group) {
          store.run("SAVEPOINT kaos_write");
          try {
            write();
            store.run("RELEASE kaos_write");
            errors.push(null);
          } catch (err) {
            store.run("ROLLBACK TO kaos_write");
            store.run("RELEASE kaos_write");
            errors.push(err);
          }
        }
      }, { durable: group.some((p) => p.durable) });
    } catch (err) { // BEGIN or COMMIT failed, or writes are refused: every write of the group
      group.forEach((p) => p.reject(err));
      return;
    }
    group.forEach((p, i) => errors[i] === null ? p.resolve() : p.reject(errors[i]));
  }
}
