/**
 * The text/event-stream format (server-sent events), parsed incrementally.
 * Shared by the agent (following its hub) and the hub's mirror (following
 * its upstream), so both read a stream the same way.
 */
export interface ServerSentEvent {
  event: string;
  data: string;
  id?: string;
}

/** Incremental parser of the text/event-stream format (WHATWG HTML §9.2). */
export class SseParser {
  private buf = '';
  private data: string[] = [];
  private event = '';
  private id: string | undefined;

  constructor(private readonly emit: (e: ServerSentEvent) => void) {}

  push(chunk: string): void {
    this.buf += chunk;
    // A line ends at \r\n, \n or \r; keep a trailing \r, it may be half of \r\n.
    for (;;) {
      const m = /\r\n|\n|\r(?!$)/.exec(this.buf);
      if (!m) break;
      const line = this.buf.slice(0, m.index);
      this.buf = this.buf.slice(m.index + m[0].length);
      this.line(line);
    }
    // A hostile or broken server must not make us buffer forever.
    if (this.buf.length > 1 << 20) this.buf = '';
  }

  private line(line: string): void {
    if (line === '') {
      if (this.data.length) this.emit({ event: this.event || 'message', data: this.data.join('\n'), id: this.id });
      this.data = [];
      this.event = '';
      return;
    }
    if (line.startsWith(':')) return;
    const colon = line.indexOf(':');
    const field = colon < 0 ? line : line.slice(0, colon);
    let value = colon < 0 ? '' : line.slice(colon + 1);
    if (value.startsWith(' ')) value = value.slice(1);
    if (field === 'data') this.data.push(value);
    else if (field === 'event') this.event = value;
    else if (field === 'id' && !value.includes('\0')) this.id = value;
  }
}
