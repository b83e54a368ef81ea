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

/** Longest line, and most data in one event, we hold: past either the event is dropped whole. */
const MAX_LINE = 1 << 20;
const MAX_EVENT_DATA = 1 << 20;

/**
 * Incremental parser of the text/event-stream format (WHATWG HTML §9.2).
 * Memory stays bounded whatever the server sends: an overlong line is skipped
 * to its end (its tail is not read as a field of its own), and an event with
 * an overlong line or too much data is dropped, not delivered in part.
 */
export class SseParser {
  private buf = '';
  private data: string[] = [];
  private dataChars = 0;
  private event = '';
  private id: string | undefined;
  /** Inside a line already too long: discard up to its end. */
  private skippingLine = false;
  /** The current event went past a cap: drop it at its blank line. */
  private dropping = false;

  constructor(private readonly emit: (e: ServerSentEvent) => void) {}

  push(chunk: string): void {
    this.buf += chunk;
    // A line ends at \r\n, \n or \r; keep a trailing \r, it may be half of \r\n.
    for (;;) {
      const m = /\r\n|\n|\r(?!$)/.exec(this.buf);
      if (!m) break;
      const line = this.buf.slice(0, m.index);
      this.buf = this.buf.slice(m.index + m[0].length);
      if (this.skippingLine) this.skippingLine = false;
      else if (line.length > MAX_LINE) this.drop();
      else this.line(line);
    }
    // A hostile or broken server must not make us buffer forever.
    if (this.buf.length > MAX_LINE) {
      this.buf = '';
      this.skippingLine = true;
      this.drop();
    }
  }

  private drop(): void {
    this.dropping = true;
    this.data = [];
    this.dataChars = 0;
  }

  private line(line: string): void {
    if (line === '') {
      if (this.data.length && !this.dropping) this.emit({ event: this.event || 'message', data: this.data.join('\n'), id: this.id });
      this.data = [];
      this.dataChars = 0;
      this.event = '';
      this.dropping = false;
      return;
    }
    if (this.dropping) return;
    if (line.startsWith(':')) return;
    const colon = line.indexOf(':');
    const field = colon < 0 ? line : line.slice(0, colon);
    let value = colon < 0 ? '' : line.slice(colon + 1);
    if (value.startsWith(' ')) value = value.slice(1);
    if (field === 'data') {
      this.dataChars += value.length + 1;
      if (this.dataChars > MAX_EVENT_DATA) this.drop();
      else this.data.push(value);
    }
    else if (field === 'event') this.event = value;
    else if (field === 'id' && !value.includes('\0')) this.id = value;
  }
}

/**
 * Read a fetch body as server-sent events until the server ends it. `touch`
 * runs before every read (it re-arms the caller's idle timer); the last event
 * id is kept here for the caller's reconnect; a handler that throws is
 * reported through `onHandlerError` and the stream goes on.
 */
export async function readEventStream(
  body: ReadableStream<Uint8Array>,
  o: { onEvent: (e: ServerSentEvent) => void; onId: (id: string) => void; touch: () => void; onHandlerError: (err: unknown) => void },
): Promise<void> {
  const parser = new SseParser((e) => {
    if (e.id !== undefined) o.onId(e.id);
    try {
      o.onEvent(e);
    } catch (err) {
      o.onHandlerError(err);
    }
  });
  const decoder = new TextDecoder();
  const reader = body.getReader();
  for (;;) {
    o.touch();
    const { value, done } = await reader.read();
    if (done) return;
    parser.push(decoder.decode(value, { stream: true }));
  }
}
