/**
 * The command line's rules, one for every command: a value that is not what a
 * flag wants and a path that is not there are usage errors (exit 2) worded
 * the same way; a typo gets the error and one hint line; serve says where it
 * really listens; an interrupted reconcile says what it kept.
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { interruptedWords } from '../../src/commands/reconcile.ts';
import { CLI, cliAsync, isolatedGitEnv, tempDir } from '../helpers/env.ts';
import { TestRegistry } from '../reconcile/helpers/registry.ts';

const env = isolatedGitEnv();

describe('usage errors are exit 2, worded one way', () => {
  it('--hub must be the hub base URL', async () => {
    const cwd = tempDir('cli-usage-');
    const bare = await cliAsync(['status', '--hub', '127.0.0.1:27080'], { cwd, env });
    expect(bare.status).toBe(2);
    expect(bare.stderr).toContain('--hub "127.0.0.1:27080" is not an http(s) URL; give the hub\'s base URL, e.g. http://127.0.0.1:9080 (did you mean http://127.0.0.1:27080?)');
    const repo = await cliAsync(['status', '--hub', 'http://127.0.0.1:27080/registry.git'], { cwd, env });
    expect(repo.status).toBe(2);
    expect(repo.stderr).toContain('names a repository; give the hub\'s base URL (http://127.0.0.1:27080)');
  });

  it('a path the command line names that is not there: does not exist, or is not a store', async () => {
    const cwd = tempDir('cli-usage-paths-');
    // A directory holding other things is not a store; an empty one is a store no pass has filled yet.
    mkdirSync(join(cwd, 'other'));
    writeFileSync(join(cwd, 'other', 'notes.txt'), 'not a store\n');
    const cases: Array<[string[], string]> = [
      [['status', '--store', '/nonexistent-store'], '--store /nonexistent-store does not exist'],
      [['gc', '--store', '/nonexistent-store'], '--store /nonexistent-store does not exist'],
      [['pin', 'face', '1', '--store', '/nonexistent-store'], '--store /nonexistent-store does not exist'],
      [['list', '--repo', '/nonexistent-repo'], '--repo /nonexistent-repo does not exist'],
      [['status', '--store', 'other'], '--store other is not a modelsync store'],
      [['gc', '--store', 'other'], '--store other is not a modelsync store'],
      [['status', '--hub', 'http://127.0.0.1:1', '--token-file', 'missing-token'], '--token-file missing-token does not exist'],
      [['reconcile', '--config', 'missing.yaml'], 'missing.yaml'],
    ];
    for (const [args, message] of cases) {
      const r = await cliAsync(args, { cwd, env });
      expect(r.status, args.join(' ')).toBe(2);
      expect(r.stderr, args.join(' ')).toContain(message);
    }
  });

  it('a mistyped flag prints the error and one hint line, not the help', async () => {
    const r = await cliAsync(['status', '--stroe', '/x'], { cwd: tempDir('cli-typo-'), env });
    expect(r.status).toBe(2);
    const lines = r.stderr.trim().split('\n');
    // commander's error (its "did you mean" on the next line), then the one hint.
    expect(lines).toEqual(["error: unknown option '--stroe'", '(Did you mean --store?)', "(run 'modelsync status --help' for the options)"]);
  });
});

describe('serve and reconcile say what is true', () => {
  it('serve --listen 0.0.0.0:0 prints the address it is bound to', async () => {
    const dir = tempDir('cli-serve-');
    const child = spawn(process.execPath, [CLI, 'serve', '--data', join(dir, 'data'), '--listen', '0.0.0.0:0'], { env });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    const exited = new Promise((resolve) => child.on('exit', resolve));
    try {
      await new Promise<void>((resolve, reject) => {
        const t = setTimeout(() => reject(new Error(`serve did not start: ${out}`)), 20_000);
        child.stdout.on('data', () => {
          if (out.includes('\n')) {
            clearTimeout(t);
            resolve();
          }
        });
      });
      expect(out).toMatch(/^modelsync hub listening on 0\.0\.0\.0:(\d+) \(every address of this machine; locally http:\/\/127\.0\.0\.1:\1\)/);
    } finally {
      child.kill('SIGTERM');
      await exited;
    }
  });

  it('Ctrl-C during reconcile exits 130 and says what was kept', async () => {
    const reg = TestRegistry.init(tempDir('cli-int-reg-'), env);
    // Big enough (64 MiB) that the pass is still copying it into the store when the signal arrives.
    reg.addVersion('face', '1', { 'w.bin': Buffer.alloc(64 << 20, 1) });
    reg.setCurrent('face', '1');
    reg.site('alpha', {});
    reg.commit('face 1');
    const dir = tempDir('cli-int-');
    const child = spawn(process.execPath, [CLI, 'reconcile', '--site', 'alpha', '--registry', reg.dir, '--store', join(dir, 'store')], { env, cwd: dir });
    let err = '';
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    const code = new Promise<number | null>((resolve) => child.on('exit', (c) => resolve(c)));
    // As soon as the pass has begun (the store exists), interrupt it.
    const started = Date.now();
    while (!existsSync(join(dir, 'store')) && Date.now() - started < 20_000) await new Promise((r) => setTimeout(r, 5));
    child.kill('SIGINT');
    const exit = await code;
    expect(exit).toBe(130);
    expect(err).toMatch(/^modelsync: interrupted \(SIGINT\)/m);
    expect(interruptedWords('SIGINT', { phase: 'fetch', bytes: 33 << 20, total: 120 << 20, objectsDone: 1, objects: 3 } as never)).toBe('interrupted (SIGINT); 33 MiB of 120 MiB kept (1/3 objects complete), the next pass resumes');
  });
});

describe('--print-systemd and PrivateTmp', () => {
  it('warns when the store or a service script lives under /tmp, and not otherwise', async () => {
    const dir = tempDir('cli-systemd-tmp-');
    const services = [{ name: 'svc', models: ['m'], health: { command: ['/bin/sh', '/tmp/checks/smoke.sh'] } }];
    mkdirSync(join(dir, 'etc'));
    const yaml = (store: string, svc: unknown[]): string => `${JSON.stringify({ site: 'beta', registry: 'https://hub.example/r.git', store, services: svc })}\n`;
    writeFileSync(join(dir, 'etc', 'agent.yaml'), yaml('/tmp/modelsync-store', services));
    const r = await cliAsync(['agent', '--config', join(dir, 'etc', 'agent.yaml'), '--print-systemd'], { cwd: dir, env });
    expect(r.status).toBe(0);
    expect(r.stderr).toContain('warning: the store /tmp/modelsync-store is under /tmp, but the unit sets PrivateTmp=true');
    expect(r.stderr).toContain('warning: a command of services[0] (svc) /tmp/checks/smoke.sh is under /tmp');
    expect(r.stdout).toContain('# WARNING: the store /tmp/modelsync-store is under /tmp');
    expect(r.stdout).toContain('PrivateTmp=true');
  });

  it('says nothing for a store and scripts outside /tmp', async () => {
    const { serviceUnit, privateTmpWarnings } = await import('../../src/agent/systemd.ts');
    expect(privateTmpWarnings([{ what: 'the store', path: '/var/lib/modelsync' }, { what: 'x', path: '/opt/tmp/run.sh' }, { what: 'y', path: '/tmpfoo/x' }])).toEqual([]);
    expect(privateTmpWarnings([{ what: 'the store', path: '/var/tmp/s' }])[0]).toMatch(/^the store \/var\/tmp\/s is under \/var\/tmp/);
    expect(serviceUnit({ site: 's', configPath: '/etc/a.yaml', node: '/n', cli: '/c', writable: [] })).toContain('PrivateTmp=true');
  });
});
