/**
 * Log lines as a person at a terminal sees them, and as a daemon writes them:
 * readable lines on a TTY (warnings and errors only for `reconcile`, whose
 * human output already says what happened), pino JSON everywhere else.
 */
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { logFormatFor, prettyLine } from '../../src/log.ts';
import { CLI, isolatedGitEnv, tempDir } from '../helpers/env.ts';
import { TestRegistry } from './helpers/registry.ts';

describe('log format', () => {
  it('is readable on a terminal without --json, JSON otherwise, and MODELSYNC_LOG_FORMAT decides when set', () => {
    expect(logFormatFor({ stderrIsTTY: true, env: {} })).toBe('pretty');
    expect(logFormatFor({ stderrIsTTY: true, json: true, env: {} })).toBe('json');
    expect(logFormatFor({ stderrIsTTY: false, env: {} })).toBe('json');
    expect(logFormatFor({ stderrIsTTY: false, env: { MODELSYNC_LOG_FORMAT: 'pretty' } })).toBe('pretty');
    expect(logFormatFor({ stderrIsTTY: true, env: { MODELSYNC_LOG_FORMAT: 'json' } })).toBe('json');
  });

  it('turns a pino line into time, level, message and key=value fields', () => {
    const line = JSON.stringify({ level: 40, time: '2025-03-10T09:07:00.123Z', name: 'modelsync', msg: 'reconcile pass', site: 'alpha', status: 'conflict', conflicts: ['face'], errors: [], token: '***', note: 'two words' });
    const local = new Date('2025-03-10T09:07:00.123Z').toTimeString().slice(0, 8);
    expect(prettyLine(line)).toBe(`${local} WARN  reconcile pass site=alpha status=conflict conflicts=["face"] token=*** note="two words"\n`);
    expect(prettyLine('not json')).toBe('not json\n');
  });
});

const hasScript = spawnSync('script', ['--version'], { encoding: 'utf8' }).status === 0;

describe.skipIf(!hasScript)('reconcile in a terminal', () => {
  it('prints no raw JSON log line above the human output', () => {
    const env = isolatedGitEnv();
    const reg = TestRegistry.init(tempDir('logs-reg-'), env);
    reg.addVersion('ssd', '1', { 'w.bin': 'weights\n'.repeat(100) });
    reg.setCurrent('ssd', '1');
    reg.site('alpha', {});
    reg.commit('ssd 1');
    const store = join(tempDir('logs-store-'), 'store');
    // `script` gives the command a pseudo-terminal for stdout and stderr, as an interactive shell would.
    const inTerminal = (args: string[], extra: NodeJS.ProcessEnv = {}): string => {
      const cmd = [process.execPath, CLI, ...args].map((a) => `'${a}'`).join(' ');
      const { MODELSYNC_LOG_LEVEL: _level, ...base } = env;
      const r = spawnSync('script', ['-qec', cmd, '/dev/null'], { cwd: reg.dir, env: { ...base, ...extra }, encoding: 'utf8' });
      return r.stdout.replace(/\r\n/g, '\n');
    };
    const first = inTerminal(['reconcile', '--site', 'alpha', '--registry', '.', '--store', store]);
    expect(first).toMatch(/^status: changed \(1 changed/m);
    expect(first).not.toMatch(/"level":|\{"/);
    // Asked for info, a person gets the summary as a readable line.
    const verbose = inTerminal(['reconcile', '--site', 'alpha', '--registry', '.', '--store', store], { MODELSYNC_LOG_LEVEL: 'info' });
    expect(verbose).toMatch(/^\d\d:\d\d:\d\d INFO  reconcile pass site=alpha commit=[0-9a-f]{12} status=in-sync bytesFetched=0 durationMs=\d+$/m);
    expect(verbose).not.toMatch(/"level":/);
    // `agent --once` is the same at a terminal: its human summary, no raw JSON above it.
    const once = inTerminal(['agent', '--once', '--site', 'alpha', '--registry', '.', '--store', store, '--verify-interval-s', '0']);
    // (It owes the services of what reconcile activated a verdict, but none uses ssd: nothing was switched or
    // restarted, so ssd is not "activated"; the status stays "changed", as the verdict is now in.)
    expect(once).toMatch(/^ {2}ssd\s+1\s+in sync$/m);
    expect(once).toMatch(/^status: changed \(0 changed, 0 B fetched/m);
    expect(once).not.toMatch(/"level":|\{"/);
  });
});
