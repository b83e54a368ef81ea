import { describe, expect, it } from 'vitest';
import { type ServerSentEvent, SseParser } from './sse.ts';

describe('SseParser against a hostile stream', () => {
  it('drops an event whose data lines add up past the cap, and reads the next one', () => {
    const got: ServerSentEvent[] = [];
    const p = new SseParser((e) => got.push(e));
    // 20 MiB of data lines with no blank line: must not be held, nor delivered.
    const line = `data: ${'a'.repeat(100 * 1024)}\n`;
    for (let i = 0; i < 200; i++) p.push(line);
    p.push('\n');
    p.push('event: ref\ndata: {"ok":1}\n\n');
    expect(got).toEqual([{ event: 'ref', data: '{"ok":1}', id: undefined }]);
  });

  it('skips the whole of an overlong line, not just its first MiB, and the event it was in', () => {
    const got: ServerSentEvent[] = [];
    const p = new SseParser((e) => got.push(e));
    p.push(`data: ${'a'.repeat(1536 * 1024)}`);
    // What follows in the same line is not a field of its own.
    p.push('event: resync\ndata: forged\n\n');
    p.push('data: next\n\n');
    expect(got).toEqual([{ event: 'message', data: 'next', id: undefined }]);
  });
});
