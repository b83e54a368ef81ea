/**
 * The human output of `reconcile` and `agent --once`: each model's bytes
 * column says what was fetched, and a switch an earlier pass made (judged
 * now) is not called "activated".
 */
import { describe, expect, it } from 'vitest';
import type { ModelOutcome, ReconcileResult } from '../reconcile/result.ts';
import { renderResult } from './reconcile.ts';

const MiB = 1 << 20;

function model(m: Partial<ModelOutcome> & Pick<ModelOutcome, 'model'>): ModelOutcome {
  return {
    action: 'none', reason: 'in-sync', detail: '', outcome: 'unchanged', desired: '1', declared: '1', desiredReason: 'registry', bytes: 0, ...m,
  } as ModelOutcome;
}

function result(models: ModelOutcome[], extra: Partial<ReconcileResult> = {}): ReconcileResult {
  return {
    status: 'changed', exitCode: 0, dryRun: false, site: 'alpha', registry: '/reg', commit: 'a'.repeat(40), models,
    changed: models.filter((m) => m.outcome === 'activated').map((m) => ({ model: m.model, from: m.from, to: m.desired })),
    rolledBack: [], conflicts: [], degraded: [], unmanaged: [], bytesFetched: 0, bytesPlanned: 0, durationMs: 12, errors: [], warnings: [],
    startedAt: '2026-01-01T00:00:00.000Z', stepMs: {}, ...extra,
  };
}

const line = (out: string, name: string): string => out.split('\n').find((l) => l.startsWith(`  ${name} `))!.replace(/ {2,}/g, '  ').trim();

describe('renderResult: bytes per model', () => {
  it('says what was fetched for each model against the bytes its version lacked', () => {
    const out = renderResult(result([
      model({ model: 'face', action: 'fetch', reason: 'upgrade', outcome: 'activated', from: '2025-11-20', desired: '2026-01-15', bytes: 6 * MiB, bytesFetched: 51 * 1024 }),
      model({ model: 'ssd', action: 'fetch', reason: 'install', outcome: 'activated', desired: '2', bytes: 2 * MiB, bytesFetched: 2 * MiB }),
      model({ model: 'pose', action: 'activate', reason: 'rollback', outcome: 'activated', from: '3', desired: '2', bytes: 0, bytesFetched: 0 }),
      model({ model: 'twin', action: 'fetch', reason: 'install', outcome: 'activated', desired: '1', bytes: MiB, bytesFetched: 0 }),
      model({ model: 'odd', action: 'fetch', reason: 'install', outcome: 'activated', desired: '1', bytes: MiB }),
    ], { bytesFetched: 51 * 1024 + 2 * MiB }));
    expect(line(out, 'face')).toBe('face  2025-11-20 → 2026-01-15  activated (upgrade)  51 KiB fetched of 6.0 MiB');
    expect(line(out, 'ssd')).toBe('ssd  - → 2  activated (install)  2.0 MiB fetched');
    expect(line(out, 'pose')).toBe('pose  3 → 2  activated (rollback)  nothing fetched (in store)');
    // Content shared with another model is fetched once, for the first.
    expect(line(out, 'twin')).toBe('twin  - → 1  activated (install)  nothing fetched of 1.0 MiB');
    // A fetcher that could not say per object: the planned figure, labelled as such.
    expect(line(out, 'odd')).toBe('odd  - → 1  activated (install)  1.0 MiB to fetch');
    expect(out).toMatch(/^status: changed \(5 changed, 2\.0 MiB fetched, 12 ms\)$/m);
  });

  it('a dry run says what it would fetch', () => {
    const out = renderResult(result([
      model({ model: 'face', action: 'fetch', reason: 'upgrade', outcome: 'planned', from: '1', desired: '2', bytes: 6 * MiB }),
      model({ model: 'pose', action: 'activate', reason: 'rollback', outcome: 'planned', from: '3', desired: '2' }),
    ], { dryRun: true, bytesPlanned: 6 * MiB }));
    expect(line(out, 'face')).toBe('face  1 → 2  would apply (upgrade)  6.0 MiB to fetch');
    expect(line(out, 'pose')).toBe('pose  3 → 2  would apply (rollback)  nothing to fetch (in store)');
  });
});

describe('renderResult: verdicts owed for switches an earlier pass made', () => {
  const owed = { since: '2026-01-01T00:00:00.000Z', by: 'reconcile' as const };
  const models = [
    model({ model: 'face_recognition', outcome: 'activated', from: '2026-01-15', desired: '2026-01-15', owedVerdict: { ...owed, from: '2025-11-20' } }),
    model({ model: 'mobilenet_ssd', outcome: 'activated', from: '2025-10-02', desired: '2025-10-02', owedVerdict: owed }),
  ];

  it('names the services restarted and checked, and does not list a model without a service as activated', () => {
    const out = renderResult(result(models), {
      services: [{ name: 'ovms', models: ['face_recognition'], reload: { url: 'http://127.0.0.1:9/v1/config/reload' }, health: { http: 'http://127.0.0.1:9/' } }],
    });
    expect(line(out, 'face_recognition')).toBe('face_recognition  2026-01-15  ovms reloaded and checked (switched by an earlier pass)');
    expect(line(out, 'mobilenet_ssd')).toBe('mobilenet_ssd  2025-10-02  in sync');
    expect(out).not.toContain('activated');
    expect(out).toMatch(/^status: changed \(0 changed, services of 1 earlier switch restarted and checked, 0 B fetched, 12 ms\)$/m);
  });

  it('without the service list it still does not claim a switch', () => {
    const out = renderResult(result(models));
    expect(line(out, 'mobilenet_ssd')).toBe('mobilenet_ssd  2025-10-02  services restarted and checked (switched by an earlier pass)');
    expect(out).toMatch(/\(0 changed, services of 2 earlier switches restarted and checked, /);
  });
});
