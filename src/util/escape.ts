/**
 * Text that came from a site or a registry (a health string a site token
 * reported, a file name in a commit, a template's error) is printed with
 * its control characters escaped, so it can never move the cursor, clear
 * the screen, retitle the terminal or forge a line of output. The one
 * helper for that: every printer of untrusted text goes through it.
 *
 * C0 (U+0000–U+001F), DEL and C1 (U+0080–U+009F, which some terminals read
 * as CSI) become `\u001b`-style escapes; so do the Unicode line and
 * paragraph separators and the bidirectional overrides, which reorder what
 * is shown. Everything else, backslashes included, is printed as it is.
 */

// eslint-disable-next-line no-control-regex
const UNSAFE = /[\u0000-\u001f\u007f-\u009f\u2028\u2029\u202a-\u202e\u2066-\u2069]/g;
// eslint-disable-next-line no-control-regex
const UNSAFE_KEEP_LINES = /[\u0000-\u0008\u000b-\u001f\u007f-\u009f\u2028\u2029\u202a-\u202e\u2066-\u2069]/g;

const hex = (c: string): string => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`;

/** One line of untrusted text: every control character escaped, newlines and tabs too. */
export function escapeControl(text: string): string {
  return text.replace(UNSAFE, hex);
}

/** Untrusted text that may span lines (an error message): newlines and tabs kept, the rest escaped. */
export function escapeControlKeepLines(text: string): string {
  return text.replace(UNSAFE_KEEP_LINES, hex);
}

/** Whether text holds anything escapeControl would change. */
export function hasControl(text: string): boolean {
  UNSAFE.lastIndex = 0;
  return UNSAFE.test(text);
}
