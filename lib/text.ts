/**
 * Text that came from a guest or a module is data: before it reaches a terminal its control
 * characters go (STYLE, "Protocols and processes"), so a serial line or a module description
 * cannot move the cursor, retitle the window or rewrite what the operator sees.
 */

// C0 controls except tab and newline, DEL, C1 controls, and the bidirectional overrides and
// isolates that reorder what a terminal shows (Trojan Source).
// deno-lint-ignore no-control-regex
const CONTROLS = /[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]/g;
// deno-lint-ignore no-control-regex
const CONTROLS_AND_NEWLINES = /[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]/g;

/** Removes control characters except tab and newline (for multi-line text). */
export function stripControls(text: string): string {
  return text.replace(CONTROLS, "");
}

/** Removes every control character, newlines and tabs too (for one line of text). */
export function stripControlsLine(text: string): string {
  return text.replace(CONTROLS_AND_NEWLINES, "");
}
