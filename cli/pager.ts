/**
 * Paging of a menu command's output: the first screenful is written as it comes (progress stays
 * live), anything past it is held and then shown a screen at a time, each after the operator
 * asks for more, so `instance list` with 10,000 instances does not scroll 10,000 lines past.
 */

/** Asks whether to show the next page; `shown` and `total` count lines. */
export type AskMore = (shown: number, total: number) => Promise<boolean>;

/** Output of one command: written through until a page is full, then held for {@linkcode finish}. */
export class Pager {
  #write: (text: string) => void;
  #pageLines: number;
  #written = 0;
  #held: string[] = [];
  #partial = "";

  /** `pageLines`: lines per page (at least 1). */
  constructor(write: (text: string) => void, pageLines: number) {
    this.#write = write;
    this.#pageLines = Math.max(1, Math.floor(pageLines));
  }

  /** Takes output: written while the first page has room, held after that. */
  write(text: string): void {
    if (this.#held.length > 0 || this.#partial !== "") {
      this.#hold(text);
      return;
    }
    let at = 0;
    while (at < text.length && this.#written < this.#pageLines) {
      const nl = text.indexOf("\n", at);
      if (nl === -1) break;
      at = nl + 1;
      this.#written++;
    }
    if (this.#written < this.#pageLines) {
      this.#write(text); // the first page has room for all of it (a partial line included)
      return;
    }
    if (at > 0) this.#write(text.slice(0, at));
    if (at < text.length) this.#hold(text.slice(at));
  }

  /** Shows the held lines a page at a time while `ask` says yes; true when all were shown. */
  async finish(ask: AskMore): Promise<boolean> {
    const lines = this.#held;
    if (this.#partial !== "") lines.push(this.#partial);
    this.#held = [];
    this.#partial = "";
    const total = this.#written + lines.length;
    let shown = this.#written;
    let at = 0;
    while (at < lines.length) {
      if (!await ask(shown, total)) return false;
      const page = lines.slice(at, at + this.#pageLines);
      this.#write(page.map((l) => `${l}\n`).join(""));
      at += page.length;
      shown += page.length;
    }
    return true;
  }

  #hold(text: string): void {
    const parts = (this.#partial + text).split("\n");
    this.#partial = parts.pop()!;
    for (const p of parts) this.#held.push(p);
  }
}
