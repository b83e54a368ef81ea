import { describe, expect, it } from 'vitest';
import { hubRepoName } from './daemon.ts';

describe('hubRepoName', () => {
  it('names the repo when the registry lives on the hub', () => {
    expect(hubRepoName('http://127.0.0.1:9080/registry.git', 'http://127.0.0.1:9080')).toBe('registry');
    expect(hubRepoName('https://x:tok@hub.example/models.git', 'https://hub.example/')).toBe('models');
    expect(hubRepoName('https://hub.example/prefix/reg.git', 'https://hub.example/prefix')).toBe('reg');
  });

  it('does not guess for a registry elsewhere', () => {
    expect(hubRepoName('https://github.com/acme/registry.git', 'https://hub.example')).toBeUndefined();
    expect(hubRepoName('/srv/registry', 'https://hub.example')).toBeUndefined();
    expect(hubRepoName('https://hub.example/a/b.git', 'https://hub.example')).toBeUndefined();
  });
});
