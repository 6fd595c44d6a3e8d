/**
 * Line framing for QMP: QEMU sends one JSON object per line (ended by CRLF). Chunks from the
 * socket may hold part of a line, many lines, or split a UTF-8 sequence; this puts them back
 * together.
 */

/** Splits a byte stream into lines without their CR/LF endings; blank lines are skipped. */
export class LineSplitter {
  #decoder = new TextDecoder("utf-8", { fatal: false });
  #buffer = "";
  #maxLineLength: number;
  #discarding = false;

  constructor(options: { maxLineLength?: number } = {}) {
    this.#maxLineLength = options.maxLineLength ?? 64 * 1024 * 1024;
  }

  /**
   * Feeds one chunk and returns the lines it completed. A line longer than the limit is dropped
   * up to its end, and `overflowed` is true for the chunk where that started.
   */
  push(chunk: Uint8Array): { lines: string[]; overflowed: boolean } {
    const lines: string[] = [];
    let overflowed = false;
    this.#buffer += this.#decoder.decode(chunk, { stream: true });
    let start = 0;
    for (;;) {
      const nl = this.#buffer.indexOf("\n", start);
      if (nl < 0) break;
      const line = this.#buffer.slice(start, nl).replace(/\r$/, "");
      start = nl + 1;
      if (this.#discarding) {
        this.#discarding = false;
        continue;
      }
      if (line.trim() !== "") lines.push(line);
    }
    this.#buffer = this.#buffer.slice(start);
    if (this.#buffer.length > this.#maxLineLength) {
      this.#buffer = "";
      overflowed = !this.#discarding;
      this.#discarding = true;
    }
    return { lines, overflowed };
  }
}
