/**
 * Terminal escape injection: text a site reported or a registry holds is
 * printed with its control characters escaped (status --hub, status --store,
 * logs' human lines), and the hub refuses reports whose short fields carry
 * control characters or whose size or shape is off, naming the field.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { prettyLine } from '../../src/log.ts';
import { escapeControl } from '../../src/util/escape.ts';
import { cliAsync, isolatedGitEnv, tempDir } from '../helpers/env.ts';
import { startTestHub } from '../helpers/hub.ts';

const env = isolatedGitEnv();
const ESC = '\u001b';
const FORGED = `${ESC}[2J${ESC}[31mREADY-FAKE${ESC}]0;owned\u0007\u009b2J`;

async function report(url: string, token: string, body: unknown): Promise<{ status: number; text: string }> {
  const r = await fetch(`${url}/api/v1/sites/beta/status`, { method: 'POST', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' }, body: typeof body === 'string' ? body : JSON.stringify(body) });
  return { status: r.status, text: await r.text() };
}

describe('text from sites and registries never reaches a terminal raw', () => {
  it('the hub refuses forged short fields and bounds a report, naming the field; status --hub escapes free text', async () => {
    const th = await startTestHub({ tokens: true });
    const site = th.secrets.site;
    const refused = await report(th.url, site, { health: FORGED });
    expect(refused.status).toBe(422);
    expect(JSON.parse(refused.text).error.message).toBe('invalid status report: report.health must not contain control characters');
    const badModels = await report(th.url, site, { health: 'Ready', models: [{ model: 7 }] });
    expect(badModels.status).toBe(422);
    expect(JSON.parse(badModels.text).error.message).toMatch(/report\.models\[0\]\.model must be a string/);
    const many = await report(th.url, site, { health: 'Ready', models: Array.from({ length: 1001 }, (_, i) => ({ model: `m${i}` })) });
    expect(many.status).toBe(422);
    expect(JSON.parse(many.text).error.message).toMatch(/report\.models has 1001 entries \(at most 1000\)/);
    const tooBig = await report(th.url, site, { health: 'Ready', lastError: 'x'.repeat(300 << 10) });
    expect(tooBig.status).toBe(413);

    // Free text is kept, and printed escaped.
    const ok = await report(th.url, site, { health: 'Degraded', commit: 'abc', lastError: `boom ${FORGED}\nsecond line`, models: [] });
    expect(ok.status).toBe(200);
    const tokenFile = join(tempDir('sec-esc-'), 'token');
    writeFileSync(tokenFile, `${th.secrets.admin}\n`);
    const r = await cliAsync(['status', '--hub', th.url, '--token-file', tokenFile], { cwd: tempDir('sec-esc-cwd-'), env });
    expect(r.stdout).toContain('boom \\u001b[2J\\u001b[31mREADY-FAKE\\u001b]0;owned\\u0007\\u009b2J\\u000asecond line');
    expect(r.stdout).not.toMatch(/[\u001b\u0007\u009b]/);
    expect(r.stdout.trim().split('\n')).toHaveLength(2);
  });

  it('status --store escapes what a pass recorded from the registry', async () => {
    const store = join(tempDir('sec-esc-store-'), 'store');
    mkdirSync(store, { recursive: true });
    writeFileSync(join(store, 'state.json'), JSON.stringify({
      format: 1, site: `alpha${ESC}[2J`, registry: '/r', branch: 'main', models: {}, pins: {}, degraded: [],
      history: [{ at: '2026-01-01T00:00:00Z', status: 'failed', changed: [], bytesFetched: 0, durationMs: 5, conflicts: [], errors: [{ code: 'TemplateError', message: `templates/x.j2:1:1: ${FORGED}` }] }],
    }));
    const r = await cliAsync(['status', '--store', store], { cwd: store, env });
    expect(r.stdout).not.toMatch(/[\u001b\u0007\u009b]/);
    expect(r.stdout).toContain('site alpha\\u001b[2J');
    expect(r.stdout).toContain('TemplateError: templates/x.j2:1:1: \\u001b[2J\\u001b[31mREADY-FAKE');
  });

  it("logs' human lines escape messages and fields; the helper keeps everything else as it is", () => {
    const line = prettyLine(JSON.stringify({ time: '2026-01-01T00:00:00Z', level: 40, msg: `template ${FORGED}`, dest: `x${ESC}y`, n: 1 }));
    expect(line).not.toMatch(/[\u001b\u0007\u009b]/);
    expect(line).toContain('template \\u001b[2J');
    expect(line).toContain('dest=x\\u001by');
    expect(escapeControl('notes\\readme.txt é 😀 \u202e')).toBe('notes\\readme.txt é 😀 \\u202e');
  });
});
