import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ROOT } from '../../test/helpers/env.ts';
import { SCHEMAS_DIR, generateJsonSchemas } from './json-schema.ts';

describe('generated JSON Schemas', () => {
  it('are up to date with src/registry/schema.ts (run `npm run schemas` to regenerate)', () => {
    for (const [file, text] of generateJsonSchemas()) {
      let committed = '';
      try {
        committed = readFileSync(join(ROOT, SCHEMAS_DIR, file), 'utf8');
      } catch {
        // missing: reported by the comparison below
      }
      expect(committed, `${SCHEMAS_DIR}/${file} is out of date: run \`npm run schemas\``).toBe(text);
    }
  });

  it('reject unknown keys, so an editor flags a typo as modelsync does', () => {
    const manifest = JSON.parse(generateJsonSchemas().get('manifest.schema.json')!) as { additionalProperties: unknown; required: string[] };
    expect(manifest.additionalProperties).toBe(false);
    expect(manifest.required).toEqual(expect.arrayContaining(['name', 'version', 'files']));
  });
});
