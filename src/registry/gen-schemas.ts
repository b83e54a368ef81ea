/** `npm run schemas`: regenerate schemas/*.schema.json from src/registry/schema.ts. */
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { SCHEMAS_DIR, generateJsonSchemas } from './json-schema.ts';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
mkdirSync(join(root, SCHEMAS_DIR), { recursive: true });
for (const [file, text] of generateJsonSchemas()) {
  writeFileSync(join(root, SCHEMAS_DIR, file), text);
  console.log(`wrote ${SCHEMAS_DIR}/${file}`);
}
