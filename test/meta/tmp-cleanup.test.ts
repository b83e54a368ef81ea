/**
 * Tests clean up after themselves: run test files in a child vitest with a
 * TMPDIR of their own and check that nothing is left in it (issue 9 item 15:
 * config tests left modelsync-agentcfg-* directories holding token files).
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, expect, it } from 'vitest';
import { ROOT } from '../helpers/env.ts';

const scratch = mkdtempSync(join(tmpdir(), 'modelsync-tmpcheck-'));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

it('the agent config and hooks tests leave no directory (and no token file) in TMPDIR', { timeout: 120_000 }, () => {
  const r = spawnSync(process.execPath, [join(ROOT, 'node_modules/vitest/vitest.mjs'), 'run', 'src/agent/config.test.ts', 'src/agent/hooks.test.ts'], {
    cwd: ROOT,
    env: { ...process.env, TMPDIR: scratch, MODELSYNC_KEEP_TMP: '' },
    encoding: 'utf8',
  });
  expect(r.status, r.stdout + r.stderr).toBe(0);
  // vitest's own caches are not ours: only our prefixes count.
  expect(readdirSync(scratch).filter((n) => n.startsWith('modelsync-'))).toEqual([]);
});
