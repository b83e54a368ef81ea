import { describe, expect, it } from 'vitest';
import type { NetworkError } from '../errors.ts';
import { MAX_STALL_KILLS, watchStall } from './stall.ts';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function setup(probe: (signal: AbortSignal) => Promise<boolean>) {
  const dead: NetworkError[] = [];
  let probes = 0;
  const w = watchStall({ where: 'http://h/x', afterMs: 100, probe: (s) => (probes++, probe(s)), onDead: (e) => dead.push(e) });
  return { w, dead, probes: () => probes };
}

describe('the dead-connection watch', () => {
  it('ends a silent body once the server answers a probe, with a NetworkError that says so', async () => {
    const { w, dead } = setup(async () => true);
    await sleep(400);
    w.stop();
    expect(dead).toHaveLength(1);
    expect(dead[0]!.code).toBe('NetworkError');
    expect(dead[0]!.message).toMatch(/no body bytes for \d+s while the server answers a new connection/);
  });

  it('keeps waiting while probes get no answer (the link is still down), probing again', async () => {
    const { w, dead, probes } = setup(async () => false);
    await sleep(600);
    w.stop();
    expect(dead).toEqual([]);
    expect(probes()).toBeGreaterThanOrEqual(2);
  });

  it('leaves a body alone that got bytes while the probe was out, or that our own cap held back', async () => {
    let answer!: (v: boolean) => void;
    const { w, dead } = setup(() => new Promise<boolean>((r) => (answer = r)));
    await sleep(200);
    w.got(10);
    answer(true);
    await sleep(20);
    expect(dead).toEqual([]);
    w.stop();

    const held = setup(async () => true);
    await held.w.held(sleep(400));
    held.w.stop();
    expect(held.dead).toEqual([]);
  });

  it('aborts a probe still out when the body ends', async () => {
    let aborted = false;
    const { w } = setup((signal) => new Promise<boolean>((r) => signal.addEventListener('abort', () => ((aborted = true), r(false)))));
    await sleep(200);
    w.stop();
    expect(aborted).toBe(true);
  });

  it('counts the bodies it ends per object, and leaves that object to the idle timeout past MAX_STALL_KILLS', async () => {
    const stalls = { killed: 0 };
    let probes = 0;
    for (let body = 0; body < MAX_STALL_KILLS + 1; body++) {
      const dead: NetworkError[] = [];
      const w = watchStall({ where: 'http://h/x', afterMs: 50, stalls, probe: async () => (probes++, true), onDead: (e) => dead.push(e) });
      await sleep(200);
      w.stop();
      expect(dead).toHaveLength(body < MAX_STALL_KILLS ? 1 : 0);
    }
    expect(stalls.killed).toBe(MAX_STALL_KILLS);
    expect(probes).toBe(MAX_STALL_KILLS);
  });
});
