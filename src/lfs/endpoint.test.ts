import { describe, expect, it } from 'vitest';
import { ConfigError } from '../errors.ts';
import { deriveFromRemote, discoverEndpoint, endpointFromUrl, isUrlLike } from './endpoint.ts';
import { GitConfig } from './gitconfig.ts';

const basic = (user: string, pass: string) => `Basic ${Buffer.from(`${user}:${pass}`).toString('base64')}`;

describe('LFS endpoint discovery', () => {
  it.each([
    ['https://hub.example/registry', 'https://hub.example/registry.git/info/lfs'],
    ['https://hub.example/registry.git', 'https://hub.example/registry.git/info/lfs'],
    ['https://hub.example/registry.git/', 'https://hub.example/registry.git/info/lfs'],
    ['https://hub.example/org/registry///', 'https://hub.example/org/registry.git/info/lfs'],
    ['http://127.0.0.1:8080/r.git?x=1#frag', 'http://127.0.0.1:8080/r.git/info/lfs'],
    ['ssh://git@hub.example:2222/org/registry.git', 'https://hub.example/org/registry.git/info/lfs'],
    ['git@hub.example:org/registry', 'https://hub.example/org/registry.git/info/lfs'],
  ])('derives %s → %s', (remote, url) => {
    expect(discoverEndpoint({ remote }).url).toBe(url);
  });

  it('tells URLs from local paths', () => {
    expect(isUrlLike('https://h/r')).toBe(true);
    expect(isUrlLike('git@h:r')).toBe(true);
    expect(isUrlLike('/srv/registry')).toBe(false);
    expect(isUrlLike('./registry')).toBe(false);
    expect(isUrlLike('C:\\registry')).toBe(false);
  });

  it('takes [lfs] url from .lfsconfig over the remote, and git config over .lfsconfig', () => {
    const lfsconfig = '[lfs]\n\turl = https://lfs.example/store/\n';
    expect(discoverEndpoint({ remote: 'https://hub.example/r.git', lfsconfig }).url).toBe('https://lfs.example/store');
    const gitConfig = '[lfs]\n  url = "https://mirror.site.local/lfs"\n';
    expect(discoverEndpoint({ remote: 'https://hub.example/r.git', lfsconfig, gitConfig }).url).toBe('https://mirror.site.local/lfs');
  });

  it('uses remote.<name>.lfsurl, and lfs.url before it (git-lfs order)', () => {
    const lfsconfig = '[remote "origin"]\n\tlfsurl = https://a.example/lfs\n';
    expect(discoverEndpoint({ remote: 'https://hub.example/r', lfsconfig }).url).toBe('https://a.example/lfs');
    expect(discoverEndpoint({ remote: 'https://hub.example/r', lfsconfig: `${lfsconfig}[lfs]\n\turl = https://b.example/lfs\n` }).url).toBe('https://b.example/lfs');
    expect(discoverEndpoint({ remote: 'https://hub.example/r', lfsconfig, remoteName: 'upstream' }).url).toBe('https://hub.example/r.git/info/lfs');
  });

  it('uses lfs.pushurl for uploads only', () => {
    const lfsconfig = '[lfs]\n\turl = https://read.example/lfs\n\tpushurl = https://write.example/lfs\n';
    expect(discoverEndpoint({ remote: 'https://h/r', lfsconfig }).url).toBe('https://read.example/lfs');
    expect(discoverEndpoint({ remote: 'https://h/r', lfsconfig, operation: 'upload' }).url).toBe('https://write.example/lfs');
  });

  it('moves credentials from the URL into an Authorization header and out of every description', () => {
    const ep = discoverEndpoint({ remote: 'https://ci:s3cr%40t@hub.example/r.git' });
    expect(ep.url).toBe('https://hub.example/r.git/info/lfs');
    expect(ep.authorization()).toBe(basic('ci', 's3cr@t'));
    const shown = `${ep.description} ${JSON.stringify(ep)} ${String(ep.url)}`;
    expect(shown).not.toContain('s3cr');
    expect(ep.secrets()).toContain('s3cr@t');
  });

  it('sends the token as the Basic password to the registry origin', () => {
    const ep = discoverEndpoint({ remote: 'https://hub.example/r.git', token: 'tok123' });
    expect(ep.authorization()).toBe(basic('modelsync', 'tok123'));
    expect(ep.secrets()).toContain('tok123');
  });

  it('does not let a committed .lfsconfig send the site token to another host', () => {
    const lfsconfig = '[lfs]\n\turl = https://attacker.example/lfs\n';
    const ep = discoverEndpoint({ remote: 'https://ci:pw@hub.example/r.git', lfsconfig, token: 'tok123' });
    expect(ep.url).toBe('https://attacker.example/lfs');
    expect(ep.authorization()).toBeUndefined();
    // Same origin as the registry: fine.
    const same = discoverEndpoint({ remote: 'https://hub.example/r.git', lfsconfig: '[lfs]\n\turl = https://hub.example/lfs/r\n', token: 'tok123' });
    expect(same.authorization()).toBe(basic('modelsync', 'tok123'));
    // Configured by the operator in git config: trusted.
    const op = discoverEndpoint({ remote: 'https://hub.example/r.git', gitConfig: '[lfs]\n\turl = https://lfs.example/x\n', token: 'tok123' });
    expect(op.authorization()).toBe(basic('modelsync', 'tok123'));
  });

  it('refuses a non-http lfs url and says which key', () => {
    expect(() => discoverEndpoint({ remote: 'https://h/r', lfsconfig: '[lfs]\n\turl = file:///srv/lfs\n' })).toThrow(/\.lfsconfig lfs\.url must be an http\(s\) URL/);
    expect(() => discoverEndpoint({ remote: '/srv/registry' })).toThrow(ConfigError);
  });

  it('builds an endpoint from a bare LFS URL', () => {
    const ep = endpointFromUrl('http://u:p@127.0.0.1:9/r.git/info/lfs/', { token: 'zz-token' });
    expect(ep.url).toBe('http://127.0.0.1:9/r.git/info/lfs');
    expect(ep.authorization()).toBe(basic('u', 'p'));
    expect(ep.resolve('objects/batch')).toBe('http://127.0.0.1:9/r.git/info/lfs/objects/batch');
  });

  it('derives without dropping the port', () => {
    expect(deriveFromRemote('http://127.0.0.1:9470/registry')).toBe('http://127.0.0.1:9470/registry.git/info/lfs');
  });
});

describe('git config reader', () => {
  it('reads sections, subsections, quoting, comments, continuations and case rules', () => {
    const cfg = GitConfig.parse(
      [
        '# comment',
        '[LFS]',
        '\tURL = "https://a.example/x" ; trailing comment',
        '[remote "Origin"]',
        '\tlfsurl = https://b.example/y # comment',
        '[core] bare',
        '[http.extra]',
        '\tvalue = one \\',
        'two',
        '[user]',
        '\tname = "A \\"quoted\\" name"  ',
      ].join('\n'),
    );
    expect(cfg.get('lfs.url')).toBe('https://a.example/x');
    expect(cfg.get('remote.Origin.lfsurl')).toBe('https://b.example/y');
    expect(cfg.get('remote.origin.lfsurl')).toBeUndefined();
    expect(cfg.get('core.bare')).toBe('true');
    expect(cfg.get('http.extra.value')).toBe('one two');
    expect(cfg.get('user.name')).toBe('A "quoted" name');
  });

  it('lets the later value and the overlay win', () => {
    const low = GitConfig.parse('[lfs]\nurl = a\nurl = b\n');
    expect(low.get('lfs.url')).toBe('b');
    expect(low.overlay(GitConfig.parse('[lfs]\nurl = c\n')).get('lfs.url')).toBe('c');
  });
});
