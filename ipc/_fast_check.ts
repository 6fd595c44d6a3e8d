/**
 * A cheaper check of kattach's results than a full zod parse (issue 13: the client's zod pass over
 * `instance list` of 10,000 rows was its largest part after the query), and of the requests kattach
 * reads (the request frame and most actions' parameters: a zod parse was some 0.5-2 ms of a
 * request on a machine woken from idle). `compileCheck` turns a zod
 * schema built only of plain parts (strings with regex/length checks, finite numbers with
 * int/range checks, booleans, enums, literals, null, nullable, optional, arrays, strict objects,
 * unions, unknown) into a predicate that is true only for values zod accepts and returns unchanged. The client
 * takes such a value as is; when the predicate says no, it runs the full zod parse, which gives
 * the error (or the output, if the predicate was merely stricter). A schema with any other part
 * (defaults, transforms, records, refinements, checks not listed) compiles to null: zod only.
 */
import type { z } from "zod";

/** True when the value surely passes the schema it was compiled from, unchanged. */
export type Check = (value: unknown) => boolean;

// zod 4's internal definitions, as far as they are read here.
interface Def {
  type: string;
  checks?: { _zod: { def: CheckDef } }[];
  shape?: Record<string, z.ZodType>;
  catchall?: z.ZodType;
  innerType?: z.ZodType;
  element?: z.ZodType;
  options?: z.ZodType[];
  entries?: Record<string, unknown>;
  values?: unknown[];
}
interface CheckDef {
  check: string;
  format?: string;
  pattern?: RegExp;
  minimum?: number;
  maximum?: number;
  value?: number;
  inclusive?: boolean;
}

const cache = new WeakMap<z.ZodType, Check | null>();

/** The predicate for `schema`, or null when the schema has parts this check does not know. */
export function compileCheck(schema: z.ZodType): Check | null {
  if (cache.has(schema)) return cache.get(schema)!;
  let check: Check | null;
  try {
    check = compile(schema);
  } catch (err) {
    if (!(err instanceof Unsupported)) throw err;
    check = null;
  }
  cache.set(schema, check);
  return check;
}

class Unsupported extends Error {}

function defOf(schema: z.ZodType): Def {
  const def = (schema as unknown as { _zod?: { def?: Def } })._zod?.def;
  if (!def || typeof def.type !== "string") throw new Unsupported("not a zod 4 schema");
  return def;
}

function compile(schema: z.ZodType): Check {
  const def = defOf(schema);
  switch (def.type) {
    case "string":
      return all((v) => typeof v === "string", (def.checks ?? []).map(stringCheck));
    case "number":
      return all(
        (v) => typeof v === "number" && Number.isFinite(v),
        (def.checks ?? []).map(numberCheck),
      );
    case "boolean":
      return plain(def, (v) => typeof v === "boolean");
    case "unknown":
    case "any":
      return plain(def, () => true);
    case "null":
      return plain(def, (v) => v === null);
    case "enum": {
      const values = new Set(Object.values(def.entries ?? {}));
      return plain(def, (v) => values.has(v));
    }
    case "literal": {
      const values = new Set(def.values ?? []);
      return plain(def, (v) => values.has(v));
    }
    case "nullable": {
      const inner = compile(def.innerType!);
      return plain(def, (v) => v === null || inner(v));
    }
    case "optional": {
      const inner = compile(def.innerType!);
      return plain(def, (v) => v === undefined || inner(v));
    }
    case "array": {
      const element = compile(def.element!);
      const each: Check = (v) => {
        if (!Array.isArray(v)) return false;
        for (let i = 0; i < v.length; i++) if (!element(v[i])) return false;
        return true;
      };
      return all(each, (def.checks ?? []).map(lengthCheck));
    }
    case "object":
      return plain(def, objectCheck(def));
    case "union": {
      const options = (def.options ?? []).map(compile);
      return plain(def, (v) => options.some((o) => o(v)));
    }
    default:
      throw new Unsupported(def.type);
  }
}

/**
 * A check of a strict object: every key known. Other objects are zod's alone: a non-strict one
 * strips unknown keys, and as an earlier option of a union its stripped output would win over a
 * later strict option this check accepted.
 */
function objectCheck(def: Def): Check {
  if (def.catchall === undefined || defOf(def.catchall).type !== "never") {
    throw new Unsupported("not a strict object");
  }
  const keys = Object.keys(def.shape ?? {});
  const known = new Set(keys);
  const checks = keys.map((k) => compile(def.shape![k]));
  // zod wants the key of an unknown (or any) value present, whatever its value, undefined too.
  const present = keys.filter((k) => ["unknown", "any"].includes(defOf(def.shape![k]).type));
  return (v) => {
    if (typeof v !== "object" || v === null || Array.isArray(v)) return false;
    const o = v as Record<string, unknown>;
    for (let i = 0; i < keys.length; i++) if (!checks[i](o[keys[i]])) return false;
    for (let i = 0; i < present.length; i++) if (!Object.hasOwn(o, present[i])) return false;
    for (const k in o) if (!known.has(k) || !Object.hasOwn(o, k)) return false;
    return true;
  };
}

function plain(def: Def, check: Check): Check {
  if ((def.checks ?? []).length > 0) throw new Unsupported(`${def.type} with checks`);
  return check;
}

function all(first: Check, rest: Check[]): Check {
  if (rest.length === 0) return first;
  return (v) => {
    if (!first(v)) return false;
    for (let i = 0; i < rest.length; i++) if (!rest[i](v)) return false;
    return true;
  };
}

function stringCheck(c: { _zod: { def: CheckDef } }): Check {
  const d = c._zod.def;
  if (
    d.check === "string_format" && d.format === "regex" && d.pattern instanceof RegExp &&
    !/[gy]/.test(d.pattern.flags) // a stateful pattern: leave it to zod
  ) {
    const re = d.pattern;
    return (v) => re.test(v as string);
  }
  return lengthCheck(c);
}

function lengthCheck(c: { _zod: { def: CheckDef } }): Check {
  const d = c._zod.def;
  if (d.check === "min_length" && typeof d.minimum === "number") {
    const min = d.minimum;
    return (v) => (v as { length: number }).length >= min;
  }
  if (d.check === "max_length" && typeof d.maximum === "number") {
    const max = d.maximum;
    return (v) => (v as { length: number }).length <= max;
  }
  throw new Unsupported(`check ${d.check}`);
}

function numberCheck(c: { _zod: { def: CheckDef } }): Check {
  const d = c._zod.def;
  if (d.check === "number_format" && d.format === "safeint") {
    return (v) => Number.isSafeInteger(v);
  }
  if ((d.check === "greater_than" || d.check === "less_than") && typeof d.value === "number") {
    const x = d.value;
    if (d.check === "greater_than") {
      return d.inclusive ? (v) => (v as number) >= x : (v) => (v as number) > x;
    }
    return d.inclusive ? (v) => (v as number) <= x : (v) => (v as number) < x;
  }
  throw new Unsupported(`check ${d.check}`);
}
