/**
 * `plan`, `render` and `sites` through the real CLI, on a real registry repo
 * (`modelsync init`'s example) with branches made by stock git.
 */
import { readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { cli, git, isolatedGitEnv, tempDir } from '../helpers/env.ts';

let env: NodeJS.ProcessEnv;
let repo: string;
const run = (args: string[]) => cli(args, { cwd: repo, env });
const g = (...args: string[]) => git(args, { cwd: repo, env }).stdout.trim();

beforeAll(() => {
  env = { ...isolatedGitEnv(), MODELSYNC_NO_AUTOPUSH: '1' };
  repo = join(tempDir('modelsync-preview-'), 'reg');
  expect(cli(['init', repo], { cwd: tempDir(), env }).status).toBe(0);
  // feature: roll face_recognition back (what a revert PR does).
  g('checkout', '-q', '-b', 'feature');
  expect(run(['rollback', 'face_recognition']).status).toBe(0);
  // main moves on meanwhile: the detection task's threshold changes. The plan of feature must not show it.
  g('checkout', '-q', 'main');
  const task = join(repo, 'templates/MobileNetSSD_allFrames.yaml.j2');
  writeFileSync(task, readFileSync(task, 'utf8').replace("'0.6' if", "'0.5' if"));
  g('commit', '-q', '-am', 'detect more');
  g('checkout', '-q', 'feature');
});

describe('modelsync plan', () => {
  it('defaults to the merge base with main → the working tree, and shows the rollback, its bytes and template diffs', () => {
    const r = run(['plan']);
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    const base = g('merge-base', 'main', 'feature').slice(0, 12);
    expect(r.stdout).toContain(`plan: merge base with main ${base} → working tree\n`);
    expect(r.stdout).toContain('1 of 3 sites change, 2 unaffected');
    expect(r.stdout).toMatch(/^site alpha\n {2}face_recognition {2}2025-12-08 → 2025-11-20 {2}rollback {2}9\.8 KiB \(nothing if the site kept it as previous\)$/m);
    expect(r.stdout).toContain('    changed facemodel.pickle (4.3 KiB): fetch 4.3 KiB, full\n');
    expect(r.stdout).toContain('    -recognizer: /var/lib/modelsync/models/face_recognition/2025-12-08/facemodel.pickle\n');
    expect(r.stdout).toContain('    +recognizer: /var/lib/modelsync/models/face_recognition/2025-11-20/facemodel.pickle\n');
    // gamma overrides face_recognition to 2025-11-20 already; beta's change is on main, not in this branch.
    expect(r.stdout).not.toMatch(/^site (beta|gamma)/m);
    expect(r.stdout).not.toContain('MobileNetSSD_allFrames');
  });

  it('reads the working tree by default and a revision with --head; --site narrows it', () => {
    writeFileSync(join(repo, 'sites/delta.yaml'), 'extends: [groups/outposts]\n');
    try {
      const tree = run(['plan']);
      expect(tree.stdout).toMatch(/^site delta \(new site\)\n {2}mobilenet_ssd {2}— → 2025-10-01 {2}install/m);
      expect(run(['plan', '--head', 'feature']).stdout).not.toContain('site delta');
      const one = run(['plan', '--site', 'beta', '--site', 'gamma']);
      expect(one.status).toBe(0);
      expect(one.stdout).toContain("changes nothing: no site's models or rendered templates differ (2 sites checked)");
      const nope = run(['plan', '--site', 'nosuch']);
      expect(nope.status).toBe(2);
      expect(nope.stderr).toContain('no site "nosuch"');
    } finally {
      g('clean', '-qf', 'sites/delta.yaml');
    }
  });

  it('--base main shows what main has that the branch undoes; the same commit on both sides changes nothing', () => {
    const r = run(['plan', '--base', 'main', '--head', 'feature']);
    expect(r.stdout).toMatch(/^site beta\n {2}template sentinel\/tasks\/MobileNetSSD_allFrames.yaml .*\n(.*\n)*? {4}-min_confidence: 0.5\n {4}\+min_confidence: 0.6\n/m);
    const same = run(['plan', '--base', 'feature', '--head', 'feature']);
    expect(same.status).toBe(0);
    expect(same.stdout).toContain('changes nothing');
  });

  it('--format markdown is a pull-request comment; --format json is one document', () => {
    const md = run(['plan', '--format', 'markdown']);
    expect(md.status).toBe(0);
    expect(md.stdout.split('\n')[0]).toBe('### modelsync plan: 1 of 3 sites change, 2 unaffected; sites fetch 9.8 KiB in all');
    expect(md.stdout).toContain('#### face_recognition\n\n| site | version | kind | files | fetch (estimate) | in full |');
    expect(md.stdout).toContain('<details><summary>alpha: <code>sentinel/tasks/FaceRecon.yaml</code>');
    expect(md.stdout).toContain('```diff\n--- a/sentinel/tasks/FaceRecon.yaml\n');
    const json = JSON.parse(run(['plan', '--format', 'json']).stdout) as { ok: boolean; changesNothing: boolean; unaffected: number; sites: Array<{ site: string; models: Array<{ kind: string; full: number }> }> };
    expect(json).toMatchObject({ ok: true, changesNothing: false, unaffected: 2 });
    expect(json.sites[0]).toMatchObject({ site: 'alpha', models: [{ kind: 'rollback', full: 10_070 }] });
  });

  it('an invalid head exits 1 with the problems as validate prints them', () => {
    const file = join(repo, 'registry/model_registry.yaml');
    const before = readFileSync(file, 'utf8');
    writeFileSync(file, before.replace('current_version: "2025-10-01"', 'current_version: "2099-01-01"'));
    try {
      const r = run(['plan']);
      expect(r.status).toBe(1);
      const problems = run(['validate']).stdout.split('\n').filter((l) => /^\S+:\d+:\d+: /.test(l));
      expect(problems.length).toBeGreaterThan(0);
      for (const p of problems) expect(r.stdout).toContain(p);
      expect(r.stdout).toContain(`head is invalid (${problems.length} problem`);
      expect(run(['plan', '--format', 'markdown']).stdout).toMatch(/^### modelsync plan: ❌ head is invalid/);
    } finally {
      writeFileSync(file, before);
    }
  });
});

describe('modelsync render', () => {
  it('prints a site\'s templates with the store path given, or writes them under --out (0644)', () => {
    const printed = run(['render', '--site', 'beta', '--store', '/srv/models']);
    expect(printed.status).toBe(0);
    expect(printed.stdout).toContain('==> sentinel/tasks/MobileNetSSD_allFrames.yaml (from templates/MobileNetSSD_allFrames.yaml.j2) <==\n');
    expect(printed.stdout).toContain('base_path: /srv/models/models/mobilenet_ssd/2025-10-01\n');
    const out = tempDir('modelsync-render-');
    const written = run(['render', '--site', 'alpha', '--rev', 'main', '--out', out]);
    expect(written.status).toBe(0);
    const recon = join(out, 'sentinel/tasks/FaceRecon.yaml');
    expect(readFileSync(recon, 'utf8')).toContain('recognizer: /var/lib/modelsync/models/face_recognition/2025-12-08/facemodel.pickle');
    expect(statSync(recon).mode & 0o777).toBe(0o644);
    expect(written.stdout).toContain(`wrote ${recon}`);
    const none = run(['render', '--site', 'nosuch']);
    expect(none.status).toBe(1);
    expect(none.stderr).toContain('site "nosuch" is not declared');
  });
});

describe('modelsync sites', () => {
  it('prints the matrix with overrides and group defaults marked, and says pins are not known here', () => {
    const r = run(['sites']);
    expect(r.status).toBe(0);
    const lines = r.stdout.split('\n');
    expect(lines[0]).toMatch(/^SITE +coral_packages +face_detection +face_recognition +haarcascades +mobilenet_ssd +openface_torch +MODELS FROM$/);
    expect(lines.find((l) => l.startsWith('gamma'))).toMatch(/2025-11-20 \(override\).*site file$/);
    expect(lines.find((l) => l.startsWith('beta'))).toMatch(/^beta +- +- +- +- +2025-10-01 +- +groups\/outposts$/);
    expect(r.stdout).toContain("pins (modelsync pin) live in each site's store and are not known here");
    const json = JSON.parse(run(['sites', '--json', '--rev', 'main']).stdout) as { sites: Array<{ site: string; models: Record<string, { version: string }> }> };
    expect(json.sites.find((s) => s.site === 'alpha')!.models.face_recognition!.version).toBe('2025-12-08');
  });
});
