import { expect, test } from 'vitest';
import { Metrics } from './metrics.ts';

test('Prometheus text: HELP, TYPE, sorted escaped labels, zero-valued counters present', () => {
  const m = new Metrics();
  const reqs = m.counter('modelsync_hub_x_total', 'Things.');
  m.counter('modelsync_hub_never_total', 'Never incremented.');
  let live = 3;
  m.gauge('modelsync_hub_live', 'Live.', () => live);
  reqs({ route: 'a', code: '200' });
  reqs({ code: '200', route: 'a' }, 2);
  reqs({ route: 'q"\\\n' });
  live = 4;
  expect(m.render()).toBe(
    [
      '# HELP modelsync_hub_x_total Things.',
      '# TYPE modelsync_hub_x_total counter',
      'modelsync_hub_x_total{code="200",route="a"} 3',
      'modelsync_hub_x_total{route="q\\"\\\\\\n"} 1',
      '# HELP modelsync_hub_never_total Never incremented.',
      '# TYPE modelsync_hub_never_total counter',
      'modelsync_hub_never_total 0',
      '# HELP modelsync_hub_live Live.',
      '# TYPE modelsync_hub_live gauge',
      'modelsync_hub_live 4',
      '',
    ].join('\n'),
  );
  expect(m.value('modelsync_hub_x_total', { route: 'a', code: '200' })).toBe(3);
});
