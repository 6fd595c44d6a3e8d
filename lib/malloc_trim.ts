/**
 * Gives memory that glibc's malloc holds free back to the system (issue 13: memory). After a big
 * answer (`instance list` of 10,000 is a 3 MB string from SQLite and a 3 MB frame) glibc keeps
 * the freed space: big blocks freed raise its mmap threshold, later ones come from its heaps,
 * and those shrink only from the top. malloc_trim(0) releases every free page. kattach's RSS
 * after five rounds of the lists of a configuration of thousands: 110-111 MiB with it, 135-137
 * without (2026-11-27, load 8-10). Through FFI (libc.so.6); where that is not there (no FFI
 * permission, another libc) it does nothing.
 */

type Libc = { symbols: { malloc_trim(pad: number | bigint): number } };
let libc: Libc | null | undefined;

/** Calls malloc_trim(0) now; false when it is not available here. */
export function trimMalloc(): boolean {
  if (libc === undefined) {
    try {
      libc = Deno.dlopen("libc.so.6", {
        malloc_trim: { parameters: ["usize"], result: "i32" },
      }) as unknown as Libc;
    } catch {
      libc = null;
    }
  }
  if (libc === null) return false;
  libc.symbols.malloc_trim(0);
  return true;
}

let pending: ReturnType<typeof setTimeout> | undefined;

/**
 * Trims `delayMs` from now unless a trim is already due: one trim per burst of calls (a menu
 * paging through a list, 7,000 actions building a store), at most one per `delayMs` under steady
 * traffic; the timer does not keep the process alive.
 */
export function trimMallocSoon(delayMs = 1000): void {
  if (pending !== undefined) return;
  pending = setTimeout(() => {
    pending = undefined;
    trimMalloc();
  }, delayMs);
  Deno.unrefTimer(pending);
}
