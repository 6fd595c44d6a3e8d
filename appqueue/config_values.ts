/**
 * Validates configuration group values against a module's climod.aq fields: coerces the
 * operator's strings to each field's type, checks constraints and fills in defaults.
 */
import { UserError } from "../lib/errors.ts";
import type { Climod, ConfigField } from "./manifest.ts";
import { compilePattern } from "./pattern.ts";

/** A configuration value as stored. */
export type ConfigValue = string | number | boolean;

/** Options of {@linkcode resolveConfigValues}. */
export interface ResolveOptions {
  /** Values already stored (for `config-group set`): kept unless overridden. */
  base?: Record<string, ConfigValue>;
  /** The module's name, for messages. */
  module: string;
}

/**
 * Checks the values given, each on its own: a field of the module, of its type, within its
 * limits and pattern; a UserError naming the first bad one. Fields not given are not looked at,
 * so it judges one answer of the menus' field-by-field prompts as well as a whole command.
 */
export function checkGivenValues(
  climod: Climod,
  input: Record<string, ConfigValue>,
  options: { module: string },
): void {
  const fields = new Map(climod.fields.map((f) => [f.name, f]));
  for (const key of Object.keys(input)) {
    if (!fields.has(key)) {
      const known = climod.fields.map((f) => f.name).join(", ") || "none";
      throw new UserError(`Module ${options.module} has no configuration field ${key}`, {
        hint: `its fields are: ${known}`,
      });
    }
  }
  for (const [key, value] of Object.entries(input)) coerce(fields.get(key)!, value);
}

/**
 * Returns the complete, validated values: base values, then `input` on top, then defaults for
 * the rest. Throws a UserError naming the first bad field.
 */
export function resolveConfigValues(
  climod: Climod,
  input: Record<string, ConfigValue>,
  options: ResolveOptions,
): Record<string, ConfigValue> {
  checkGivenValues(climod, input, options);
  const out: Record<string, ConfigValue> = {};
  for (const field of climod.fields) {
    const given = Object.hasOwn(input, field.name) ? input[field.name] : options.base?.[field.name];
    if (given === undefined) {
      if (field.default === undefined) {
        throw new UserError(`Field ${field.name} of module ${options.module} is required`, {
          hint: `add ${field.name}=VALUE${field.help ? ` (${field.help})` : ""}`,
        });
      }
      out[field.name] = field.default;
      continue;
    }
    out[field.name] = coerce(field, given);
  }
  return out;
}

/** Converts and checks one value for one field. */
export function coerce(field: ConfigField, value: ConfigValue): ConfigValue {
  const bad = (why: string, hint = field.help): never => {
    throw new UserError(`Invalid value ${JSON.stringify(value)} for ${field.name}: ${why}`, {
      hint,
    });
  };
  switch (field.type) {
    case "string": {
      if (typeof value !== "string") return bad("expected text");
      if (value.length > field.maxLength) bad(`at most ${field.maxLength} characters`);
      if (field.minLength !== undefined && value.length < field.minLength) {
        bad(`at least ${field.minLength} characters`);
      }
      // deno-lint-ignore no-control-regex
      if (/[\x00-\x08\x0b-\x1f\x7f]/.test(value)) bad("control characters are not allowed");
      // Linear-time matching: a module's pattern cannot stall kattach (appqueue/pattern.ts).
      if (field.pattern !== undefined && !compilePattern(field.pattern).test(value)) {
        bad(`must match ${field.pattern}`);
      }
      return value;
    }
    case "integer": {
      const n = typeof value === "number"
        ? value
        : typeof value === "string" && /^-?\d{1,15}$/.test(value)
        ? Number(value)
        : NaN;
      if (!Number.isSafeInteger(n)) return bad("expected a whole number");
      if (field.min !== undefined && n < field.min) bad(`must be at least ${field.min}`);
      if (field.max !== undefined && n > field.max) bad(`must be at most ${field.max}`);
      return n;
    }
    case "boolean": {
      if (typeof value === "boolean") return value;
      const s = String(value).toLowerCase();
      if (["true", "yes", "on", "1"].includes(s)) return true;
      if (["false", "no", "off", "0"].includes(s)) return false;
      return bad("expected true or false");
    }
    case "enum": {
      if (typeof value !== "string" || !field.choices.includes(value)) {
        return bad(`expected one of ${field.choices.join(", ")}`);
      }
      return value;
    }
    case "ipv4": {
      if (typeof value !== "string" || !isIpv4(value)) {
        return bad("expected an IPv4 address like 10.0.0.1");
      }
      return value;
    }
  }
}

/** Checks a climod's declared defaults against its own constraints (at import time). */
export function checkClimodDefaults(climod: Climod, module: string): void {
  for (const field of climod.fields) {
    if (field.default === undefined) continue;
    try {
      coerce(field, field.default);
    } catch (err) {
      throw new UserError(
        `Invalid climod.aq of ${module}: the default of ${field.name} breaks its own rules (${
          (err as Error).message
        })`,
      );
    }
    if (field.type === "enum" && !field.choices.includes(field.default)) {
      throw new UserError(`Invalid climod.aq of ${module}: default of ${field.name} not a choice`);
    }
  }
}

function isIpv4(s: string): boolean {
  const parts = s.split(".");
  return parts.length === 4 &&
    parts.every((p) => /^(0|[1-9]\d{0,2})$/.test(p) && Number(p) <= 255);
}
