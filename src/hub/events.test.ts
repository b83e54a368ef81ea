import { describe, expect, test } from 'vitest';
import { EventHub } from './events.ts';

const ev = (n: number) => ({ repo: 'r', ref: 'refs/heads/main', before: '0'.repeat(40), after: String(n).padStart(40, '0'), at: '2025-01-01T00:00:00.000Z' });

describe('EventHub replay plan', () => {
  test('replays what came after the last id; asks for a resync when the ring cannot', () => {
    const hub = new EventHub({ ringSize: 3, heartbeatMs: 60_000, maxSubscribers: 10, epoch: 'e1' });
    try {
      expect(hub.planReplay(undefined)).toEqual({ kind: 'none' });
      const ids = [1, 2, 3, 4, 5].map((n) => hub.publish(ev(n)));
      expect(ids).toEqual(['e1-1', 'e1-2', 'e1-3', 'e1-4', 'e1-5']);
      // Ring holds 3..5: after 2 everything is there; after 1, event 2 is lost.
      const after2 = hub.planReplay('e1-2');
      expect(after2.kind === 'replay' && after2.events.map((e) => e.id)).toEqual(['e1-3', 'e1-4', 'e1-5']);
      expect(hub.planReplay('e1-5')).toEqual({ kind: 'replay', events: [] });
      expect(hub.planReplay('e1-1').kind).toBe('resync');
      expect(hub.planReplay('e0-5').kind).toBe('resync');
      expect(hub.planReplay('e1-9').kind).toBe('resync');
      expect(hub.planReplay('garbage').kind).toBe('resync');
    } finally {
      hub.close();
    }
  });
});
