import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/**
 * The modelsync checkout or package this code runs from. Found by walking up
 * to our package.json rather than a fixed `../..`, because the same modules
 * run from src/ (through tsx) and bundled into dist/.
 */
function findProjectRoot(start: string): string {
  let dir = start;
  for (;;) {
    const pkg = join(dir, 'package.json');
    if (existsSync(pkg)) {
      try {
        if ((JSON.parse(readFileSync(pkg, 'utf8')) as { name?: string }).name === 'modelsync') return dir;
      } catch {
        // not ours; keep walking
      }
    }
    const up = dirname(dir);
    if (up === dir) throw new Error(`cannot find modelsync's package.json above ${start}`);
    dir = up;
  }
}

export const PROJECT_ROOT = findProjectRoot(dirname(fileURLToPath(import.meta.url)));
/** The executable users run (`npx modelsync`), for child processes and systemd units. */
export const CLI_PATH = join(PROJECT_ROOT, 'bin', 'modelsync.js');
