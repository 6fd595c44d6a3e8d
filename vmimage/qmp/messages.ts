/**
 * The shapes of messages QEMU sends on a QMP socket: greeting, success reply, error reply and
 * event. Each is validated with zod where it enters (STYLE rule 6).
 *
 * These are `z.object`, not `z.strictObject`, on purpose: QEMU adds members to its messages
 * across releases and the QMP specification asks clients to ignore members they do not know.
 * Unknown members are stripped, so callers still only see the typed fields.
 */
import { z } from "zod";

const Count = z.number().int().nonnegative();

/** The first message on a QMP socket: QEMU's version and the capabilities it offers. */
export const QmpGreeting = z.object({
  QMP: z.object({
    version: z.object({
      qemu: z.object({ major: Count, minor: Count, micro: Count }),
      package: z.string(),
    }),
    capabilities: z.array(z.string()),
  }),
});
export type QmpGreeting = z.infer<typeof QmpGreeting>;

/** A reply to an `execute`, echoing the request's id. */
export const QmpReturn = z.object({
  return: z.unknown(),
  id: z.unknown().optional(),
});
export type QmpReturn = z.infer<typeof QmpReturn>;

/** A failed `execute`: QMP's error class and description, echoing the request's id. */
export const QmpErrorReply = z.object({
  error: z.object({ class: z.string(), desc: z.string() }),
  id: z.unknown().optional(),
});
export type QmpErrorReply = z.infer<typeof QmpErrorReply>;

/** An asynchronous event, e.g. STOP, RESUME, SHUTDOWN, with its data (`{}` when it has none). */
export const QmpEvent = z.object({
  event: z.string().min(1),
  data: z.record(z.string(), z.unknown()).default({}),
  timestamp: z.object({ seconds: z.number().int(), microseconds: z.number().int() }),
});
export type QmpEvent = z.infer<typeof QmpEvent>;

/** One parsed and validated message from QEMU. */
export type QmpMessage =
  | { kind: "greeting"; greeting: QmpGreeting }
  | { kind: "return"; reply: QmpReturn }
  | { kind: "error"; reply: QmpErrorReply }
  | { kind: "event"; event: QmpEvent };

/** Parses one line from QEMU; throws a description of what is wrong when it is not QMP. */
export function parseQmpLine(line: string): QmpMessage {
  let value: unknown;
  try {
    value = JSON.parse(line);
  } catch {
    throw new Error(`not JSON: ${preview(line)}`);
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw new Error(`not a JSON object: ${preview(line)}`);
  }
  const check = <T>(schema: z.ZodType<T>, what: string): T => {
    const r = schema.safeParse(value);
    if (!r.success) {
      const issues = r.error.issues.map((i) => `${i.path.join(".") || "(root)"}: ${i.message}`);
      throw new Error(`malformed ${what} (${issues.join("; ")}): ${preview(line)}`);
    }
    return r.data;
  };
  if ("return" in value) return { kind: "return", reply: check(QmpReturn, "reply") };
  if ("error" in value) return { kind: "error", reply: check(QmpErrorReply, "error reply") };
  if ("event" in value) return { kind: "event", event: check(QmpEvent, "event") };
  if ("QMP" in value) return { kind: "greeting", greeting: check(QmpGreeting, "greeting") };
  throw new Error(`unknown message: ${preview(line)}`);
}

function preview(line: string): string {
  return JSON.stringify(line.length > 200 ? `${line.slice(0, 200)}…` : line);
}
