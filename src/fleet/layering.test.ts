import { readFileSync, readdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const SRC = join(dirname(fileURLToPath(import.meta.url)), '..');
const imports = (file: string): string[] => [...readFileSync(file, 'utf8').matchAll(/^import[^'"]*['"]([^'"]+)['"]/gm)].map((m) => m[1]!);

describe('src/fleet sits below the commands, the agent and the reconcile pass', () => {
  it('imports none of them (they import it)', () => {
    for (const f of readdirSync(join(SRC, 'fleet')).filter((n) => n.endsWith('.ts') && !n.endsWith('.test.ts'))) {
      for (const spec of imports(join(SRC, 'fleet', f))) expect(spec, `${f} imports ${spec}`).not.toMatch(/^\.\.\/(commands|agent|reconcile|hub|cli)/);
    }
  });

  it('the reconcile pass resolves its desired state with fleet/desiredState, the function plan previews with', () => {
    const load = readFileSync(join(SRC, 'reconcile/load.ts'), 'utf8');
    expect(load).toMatch(/desiredState\(ctx\.registry!, ctx\.opts\.site, \{ pins: ctx\.pins \}\)/);
    expect(load).not.toMatch(/desiredModels|resolveSite\(/);
  });
});
