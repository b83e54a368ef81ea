/**
 * JSON Schemas for editors, generated from the zod schemas (the input side:
 * what a person may write, e.g. an unquoted integer version). Written to
 * schemas/<name>.schema.json by `npm run schemas`; a test fails when the
 * committed files differ from what this produces.
 */
import { z } from 'zod';
import { FILE_SCHEMAS } from './schema.ts';

const TITLES: Record<keyof typeof FILE_SCHEMAS, string> = {
  model_registry: 'modelsync registry/model_registry.yaml',
  manifest: 'modelsync registry/<model>/<version>/manifest.yaml',
  site: 'modelsync sites/<site>.yaml and sites/groups/<group>.yaml',
  agent: 'modelsync agent.yaml',
  tokens: 'modelsync hub tokens file',
  rollout: 'modelsync registry/rollouts/<model>.yaml',
};

export const SCHEMAS_DIR = 'schemas';

export function schemaFileName(name: string): string {
  return `${name}.schema.json`;
}

export function generateJsonSchemas(): Map<string, string> {
  const out = new Map<string, string>();
  for (const [name, schema] of Object.entries(FILE_SCHEMAS) as Array<[keyof typeof FILE_SCHEMAS, z.ZodType]>) {
    const json = z.toJSONSchema(schema, {
      io: 'input',
      target: 'draft-2020-12',
      // z.date() (YAML timestamps in date_deployed) has no JSON form; a string is what people write.
      unrepresentable: 'any',
      override: (ctx) => {
        const def = (ctx.zodSchema as { _zod?: { def?: { type?: string } } })._zod?.def;
        if (def?.type === 'date') Object.assign(ctx.jsonSchema, { type: 'string', format: 'date' });
      },
    }) as Record<string, unknown>;
    const doc = { $schema: json.$schema, $id: schemaFileName(name), title: TITLES[name], ...json };
    out.set(schemaFileName(name), `${JSON.stringify(doc, null, 2)}\n`);
  }
  return out;
}
