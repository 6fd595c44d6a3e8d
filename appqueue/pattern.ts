/**
 * Validation patterns of module configuration fields (climod.aq `pattern`), in a restricted
 * regular-expression language matched in linear time. A module is untrusted input, and a
 * backtracking engine (JavaScript's RegExp) takes exponential time on patterns such as `(a+)+b`:
 * one `config-group add` would stall kattach. Here a pattern is parsed at import (anything outside
 * the language is refused, naming it) and compiled to a Thompson NFA, which a value walks once:
 * time grows with value length × pattern size, never exponentially.
 *
 * The language, a subset of JavaScript's syntax with the same meaning: literals; `\` before a
 * punctuation character; `.`; classes `[a-z_]`, `[^…]`; `\d \w \s \D \W \S`; groups `(…)` and
 * `(?:…)`; alternation `|`; quantifiers `* + ?` and `{n}`, `{n,}`, `{n,m}` (greedy or lazy, which
 * matters not for a whole-value test); `^` at the start and `$` at the end (the whole value must
 * match anyway). Not in it: backreferences, lookaround, word boundaries, named groups, Unicode
 * escapes and flags.
 */
import { UserError } from "../lib/errors.ts";

/** The largest compiled pattern, in NFA states (bounds the work per character). */
export const MAX_PATTERN_STATES = 512;
/** The largest bound of a `{n,m}` quantifier. */
const MAX_REPEAT = 255;

type Ranges = [number, number][];
interface CharSet {
  ranges: Ranges;
  negate: boolean;
}
type Node =
  | { t: "set"; set: CharSet }
  | { t: "seq"; items: Node[] }
  | { t: "alt"; options: Node[] }
  | { t: "repeat"; node: Node; min: number; max: number };

const DIGIT: Ranges = [[0x30, 0x39]];
const WORD: Ranges = [[0x30, 0x39], [0x41, 0x5a], [0x5f, 0x5f], [0x61, 0x7a]];
const SPACE: Ranges = [
  [0x09, 0x0d],
  [0x20, 0x20],
  [0xa0, 0xa0],
  [0x1680, 0x1680],
  [0x2000, 0x200a],
  [0x2028, 0x2029],
  [0x202f, 0x202f],
  [0x205f, 0x205f],
  [0x3000, 0x3000],
  [0xfeff, 0xfeff],
];
/** `.`: anything but a line terminator. */
const DOT: CharSet = { ranges: [[0x0a, 0x0a], [0x0d, 0x0d], [0x2028, 0x2029]], negate: true };

/** Why a pattern is not in the language (a UserError for the module author). */
export class PatternError extends UserError {
  constructor(pattern: string, why: string) {
    super(`Invalid pattern ${JSON.stringify(pattern)}: ${why}`, {
      hint: "patterns are a restricted regular-expression language (docs/modules.md)",
    });
    this.name = "PatternError";
  }
}

class Parser {
  #s: string;
  #i = 0;
  constructor(s: string) {
    this.#s = s;
  }

  fail(why: string): never {
    throw new PatternError(this.#s, `${why} at offset ${this.#i}`);
  }

  parse(): Node {
    if (this.#s.startsWith("^")) this.#i = 1;
    const node = this.#alt();
    if (this.#i < this.#s.length) this.fail(`unexpected ${JSON.stringify(this.#s[this.#i])}`);
    return node;
  }

  #peek(): string | undefined {
    return this.#s[this.#i];
  }

  #alt(): Node {
    const options = [this.#seq()];
    while (this.#peek() === "|") {
      this.#i++;
      options.push(this.#seq());
    }
    return options.length === 1 ? options[0] : { t: "alt", options };
  }

  #seq(): Node {
    const items: Node[] = [];
    for (;;) {
      const c = this.#peek();
      if (c === undefined || c === "|" || c === ")") break;
      if (c === "$") {
        // Only as the very end of the pattern (the whole value must match anyway).
        if (this.#i === this.#s.length - 1) {
          this.#i++;
          break;
        }
        this.fail("'$' is allowed only at the end");
      }
      items.push(this.#quantified(this.#atom()));
    }
    return { t: "seq", items };
  }

  #atom(): Node {
    const c = this.#s[this.#i++];
    switch (c) {
      case "(": {
        if (this.#peek() === "?") {
          if (this.#s[this.#i + 1] !== ":") {
            this.fail("lookaround and named groups are not supported");
          }
          this.#i += 2;
        }
        const inner = this.#alt();
        if (this.#peek() !== ")") this.fail("missing ')'");
        this.#i++;
        return inner;
      }
      case "[":
        return { t: "set", set: this.#class() };
      case ".":
        return { t: "set", set: DOT };
      case "\\":
        return { t: "set", set: this.#escape(false) };
      case "^":
        return this.fail("'^' is allowed only at the start");
      case "*":
      case "+":
      case "?":
      case "{":
        return this.fail(`nothing to repeat before ${JSON.stringify(c)}`);
      case "]":
      case "}":
        return this.fail(`unescaped ${JSON.stringify(c)}`);
      default:
        return { t: "set", set: { ranges: [[c.charCodeAt(0), c.charCodeAt(0)]], negate: false } };
    }
  }

  #quantified(node: Node): Node {
    let out = node;
    for (;;) {
      const c = this.#peek();
      let min: number, max: number;
      if (c === "*") [min, max] = [0, Infinity];
      else if (c === "+") [min, max] = [1, Infinity];
      else if (c === "?") [min, max] = [0, 1];
      else if (c === "{") {
        const m = /^\{(\d{1,3})(,(\d{0,3}))?\}/.exec(this.#s.slice(this.#i));
        if (!m) this.fail("'{' must start a quantifier {n}, {n,} or {n,m}");
        min = Number(m[1]);
        max = m[2] === undefined ? min : m[3] === "" ? Infinity : Number(m[3]);
        if (min > MAX_REPEAT || (max !== Infinity && max > MAX_REPEAT)) {
          this.fail(`quantifier bounds run up to ${MAX_REPEAT}`);
        }
        if (max < min) this.fail("quantifier {n,m} needs n <= m");
        this.#i += m[0].length - 1;
      } else return out;
      this.#i++;
      if (this.#peek() === "?") this.#i++; // lazy: same set of whole-value matches
      if (out.t === "repeat") this.fail("a quantifier cannot follow another");
      out = { t: "repeat", node: out, min, max };
    }
  }

  #escape(inClass: boolean): CharSet {
    const c = this.#s[this.#i++];
    if (c === undefined) this.fail("'\\' at the end");
    const classes: Record<string, CharSet> = {
      d: { ranges: DIGIT, negate: false },
      w: { ranges: WORD, negate: false },
      s: { ranges: SPACE, negate: false },
      D: { ranges: DIGIT, negate: true },
      W: { ranges: WORD, negate: true },
      S: { ranges: SPACE, negate: true },
    };
    if (c in classes) {
      if (inClass && classes[c].negate) this.fail(`\\${c} inside a class is not supported`);
      return classes[c];
    }
    const simple: Record<string, number> = { t: 9, n: 10, r: 13 };
    if (c in simple) return { ranges: [[simple[c], simple[c]]], negate: false };
    if (/[\p{L}\p{N}]/u.test(c)) this.fail(`the escape \\${c} is not supported`);
    return { ranges: [[c.charCodeAt(0), c.charCodeAt(0)]], negate: false };
  }

  #class(): CharSet {
    const negate = this.#peek() === "^";
    if (negate) this.#i++;
    const ranges: Ranges = [];
    let first = true;
    for (;;) {
      const c = this.#peek();
      if (c === undefined) this.fail("missing ']'");
      if (c === "]" && !first) {
        this.#i++;
        return { ranges, negate };
      }
      first = false;
      const lo = this.#classAtom();
      if (this.#peek() === "-" && this.#s[this.#i + 1] !== "]" && this.#s[this.#i + 1]) {
        this.#i++;
        const hi = this.#classAtom();
        if (lo.length !== 1 || hi.length !== 1 || lo[0][0] !== lo[0][1] || hi[0][0] !== hi[0][1]) {
          this.fail("a range needs single characters at both ends");
        }
        if (hi[0][0] < lo[0][0]) this.fail("range out of order");
        ranges.push([lo[0][0], hi[0][0]]);
      } else ranges.push(...lo);
    }
  }

  #classAtom(): Ranges {
    const c = this.#s[this.#i++];
    if (c === "\\") return this.#escape(true).ranges;
    if (c === "[") this.fail("nested classes are not supported");
    return [[c.charCodeAt(0), c.charCodeAt(0)]];
  }
}

// The NFA: state i is a character test, a split (two epsilon edges) or the match state.
type State =
  | { k: "set"; set: CharSet; out: number }
  | { k: "split"; a: number; b: number }
  | { k: "eps"; out: number }
  | { k: "match" };

class Builder {
  states: State[] = [];
  #pattern: string;
  constructor(pattern: string) {
    this.#pattern = pattern;
  }

  add(s: State): number {
    if (this.states.length >= MAX_PATTERN_STATES) {
      throw new PatternError(this.#pattern, `larger than ${MAX_PATTERN_STATES} states`);
    }
    this.states.push(s);
    return this.states.length - 1;
  }

  /** Compiles `node` so that it continues to state `next`; returns its entry state. */
  build(node: Node, next: number): number {
    switch (node.t) {
      case "set":
        return this.add({ k: "set", set: node.set, out: next });
      case "seq": {
        let entry = next;
        for (let i = node.items.length - 1; i >= 0; i--) entry = this.build(node.items[i], entry);
        return entry;
      }
      case "alt": {
        let entry = this.build(node.options[node.options.length - 1], next);
        for (let i = node.options.length - 2; i >= 0; i--) {
          entry = this.add({ k: "split", a: this.build(node.options[i], next), b: entry });
        }
        return entry;
      }
      case "repeat": {
        let entry = next;
        if (node.max === Infinity) {
          // A loop: split → (body → back to split) | next.
          const loop = this.add({ k: "split", a: -1, b: next });
          const body = this.build(node.node, loop);
          (this.states[loop] as { a: number }).a = body;
          entry = loop;
        } else {
          for (let i = node.min; i < node.max; i++) {
            entry = this.add({ k: "split", a: this.build(node.node, entry), b: next });
            next = entry;
          }
        }
        for (let i = 0; i < node.min; i++) entry = this.build(node.node, entry);
        return entry;
      }
    }
  }
}

function inSet(set: CharSet, code: number): boolean {
  let hit = false;
  for (const [lo, hi] of set.ranges) {
    if (code >= lo && code <= hi) {
      hit = true;
      break;
    }
  }
  return hit !== set.negate;
}

/** A compiled pattern: `test(value)` says whether the whole value matches. */
export class Pattern {
  readonly source: string;
  // The NFA in flat arrays: kind (0 set, 1 split, 2 match), the two edges, and per set state an
  // ASCII table (128 entries) plus its ranges for the rest.
  #kind: Uint8Array;
  #a: Int32Array;
  #b: Int32Array;
  #ascii: Uint8Array;
  #sets: (CharSet | null)[];
  #start: number;

  private constructor(source: string, states: State[], start: number) {
    this.source = source;
    const n = states.length;
    this.#kind = new Uint8Array(n);
    this.#a = new Int32Array(n);
    this.#b = new Int32Array(n);
    this.#ascii = new Uint8Array(n * 128);
    this.#sets = states.map(() => null);
    states.forEach((st, i) => {
      if (st.k === "set") {
        this.#kind[i] = 0;
        this.#a[i] = st.out;
        this.#sets[i] = st.set;
        for (let c = 0; c < 128; c++) this.#ascii[i * 128 + c] = inSet(st.set, c) ? 1 : 0;
      } else if (st.k === "split") {
        this.#kind[i] = 1;
        this.#a[i] = st.a;
        this.#b[i] = st.b;
      } else if (st.k === "eps") {
        this.#kind[i] = 1;
        this.#a[i] = st.out;
        this.#b[i] = st.out;
      } else this.#kind[i] = 2;
    });
    this.#start = start;
  }

  /** Parses and compiles a pattern; a PatternError names what is outside the language. */
  static compile(source: string): Pattern {
    const ast = new Parser(source).parse();
    const b = new Builder(source);
    const match = b.add({ k: "match" });
    const start = b.build(ast, match);
    return new Pattern(source, b.states, start);
  }

  /**
   * True when the whole value matches (UTF-16 code units, like RegExp without the u flag). Work
   * is at most value length × states: each state enters the active set once per character.
   */
  test(value: string): boolean {
    const n = this.#kind.length;
    const kind = this.#kind, ea = this.#a, eb = this.#b, ascii = this.#ascii;
    const mark = new Int32Array(n).fill(-1);
    const stack = new Int32Array(n * 2 + 2);
    let cur = new Int32Array(n), nxt = new Int32Array(n);
    let curLen = 0;
    // Adds the epsilon closure of `s` to list `into` (its set and match states only).
    const close = (into: Int32Array, len: number, s: number, gen: number): number => {
      let sp = 0;
      stack[sp++] = s;
      while (sp > 0) {
        const i = stack[--sp];
        if (mark[i] === gen) continue;
        mark[i] = gen;
        if (kind[i] === 1) {
          stack[sp++] = eb[i];
          stack[sp++] = ea[i];
        } else into[len++] = i;
      }
      return len;
    };
    curLen = close(cur, 0, this.#start, 0);
    for (let pos = 0; pos < value.length; pos++) {
      const code = value.charCodeAt(pos);
      let nxtLen = 0;
      for (let j = 0; j < curLen; j++) {
        const i = cur[j];
        if (kind[i] !== 0) continue;
        const hit = code < 128 ? ascii[i * 128 + code] === 1 : inSet(this.#sets[i]!, code);
        if (hit) nxtLen = close(nxt, nxtLen, ea[i], pos + 1);
      }
      if (nxtLen === 0) return false;
      [cur, nxt] = [nxt, cur];
      curLen = nxtLen;
    }
    for (let j = 0; j < curLen; j++) if (kind[cur[j]] === 2) return true;
    return false;
  }
}

const cache = new Map<string, Pattern>();

/** The compiled pattern of a source, cached (a handful of fields per module). */
export function compilePattern(source: string): Pattern {
  let p = cache.get(source);
  if (p === undefined) {
    p = Pattern.compile(source);
    if (cache.size >= 256) cache.delete(cache.keys().next().value!);
    cache.set(source, p);
  }
  return p;
}
