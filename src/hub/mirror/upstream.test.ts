import { describe, expect, it } from 'vitest';
import { parseUpstream } from './upstream.ts';

describe('parseUpstream', () => {
  it('names the hub, the repository and the LFS endpoint of an upstream registry URL', () => {
    expect(parseUpstream('https://hub.example/registry.git', 'tok')).toEqual({
      repoUrl: 'https://hub.example/registry.git',
      base: 'https://hub.example',
      repo: 'registry',
      lfsUrl: 'https://hub.example/registry.git/info/lfs',
      description: 'https://hub.example/registry.git',
      token: 'tok',
    });
    // A hub behind a path prefix, and a URL without ".git".
    expect(parseUpstream('https://proxy.example/modelsync/registry/')).toMatchObject({ base: 'https://proxy.example/modelsync', repo: 'registry', repoUrl: 'https://proxy.example/modelsync/registry.git' });
  });

  it('takes a token out of the URL, never keeping it in what it prints', () => {
    const up = parseUpstream('http://x:s%40cret@127.0.0.1:9080/registry.git');
    expect(up.token).toBe('s@cret');
    expect(JSON.stringify({ ...up, token: undefined })).not.toContain('cret');
    // --token-file wins over the URL's.
    expect(parseUpstream('http://x:url@127.0.0.1:9080/registry.git', 'file').token).toBe('file');
  });

  it('refuses what is not a hub repository URL', () => {
    expect(() => parseUpstream('ftp://hub/registry.git')).toThrow(/http\(s\) URL/);
    expect(() => parseUpstream('https://hub.example/')).toThrow(/must end in \/<repo>\.git/);
    expect(() => parseUpstream('https://hub.example/..git')).toThrow(/must end in \/<repo>\.git/);
    expect(() => parseUpstream('https://hub.example/r.git?token=1')).toThrow(/query/);
    expect(() => parseUpstream('not a url')).toThrow(/upstream registry's URL/);
  });
});
