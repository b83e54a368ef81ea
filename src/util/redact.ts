/** Strip credentials from a URL before it reaches a log line or an error message. */
export function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.username || u.password) {
      u.username = u.username ? '***' : '';
      u.password = u.password ? '***' : '';
    }
    for (const key of [...u.searchParams.keys()]) {
      if (/token|signature|sig|key|secret|credential|password/i.test(key)) u.searchParams.set(key, '***');
    }
    return u.toString();
  } catch {
    return url.replace(/\/\/[^/@\s]*@/, '//***@');
  }
}

/**
 * Mask credentials in free text (an error message that quotes a URL, say):
 * every `//user:pass@` or `//token@` becomes `//***@`. For anything stored
 * or logged that may repeat a URL someone typed.
 */
export function redactText(text: string): string {
  return text.replace(/\/\/[^/@\s"'<>]*@/g, '//***@');
}
