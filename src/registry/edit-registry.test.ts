import { describe, expect, it } from 'vitest';
import { EMPTY_MODEL_REGISTRY, promoteInText, setVersionsInText } from './edit-registry.ts';

const TEXT = `# Deployments. Reviewed by the ML team.
models:
  # the detector
  det:   {current_version: '2025-01-02', description: "flow style"}

  rec:
    current_version: 2025-01-01   # promoted on a Friday
    description: unquoted text stays unquoted
  ints:
    current_version: 3
`;

describe('model_registry.yaml edits', () => {
  it('promote changes only the version lines, keeping comments, their spacing, blank lines and quoting', () => {
    const { text, from } = promoteInText(TEXT, 'rec', '2025-02-01');
    expect(from).toBe('2025-01-01');
    expect(text).toBe(TEXT.replace(
      '    current_version: 2025-01-01   # promoted on a Friday\n',
      '    current_version: 2025-02-01   # promoted on a Friday\n    previous_version: "2025-01-01"\n',
    ));
    const flow = promoteInText(TEXT, 'det', '2025-03-01').text;
    expect(flow).toContain("det: { current_version: '2025-03-01', previous_version: \"2025-01-02\", description: \"flow style\" }");
    expect(flow).toContain('# the detector\n');
  });

  it('quotes an integer-looking version so it reads back as a string', () => {
    const { text } = promoteInText(TEXT, 'ints', '4');
    expect(text).toContain('  ints:\n    current_version: "4"\n    previous_version: "3"\n');
  });

  it('creates an entry for a new model only when asked, in block style', () => {
    expect(() => promoteInText(TEXT, 'new', '1')).toThrow(/not declared/);
    const { text, created } = promoteInText(EMPTY_MODEL_REGISTRY, 'new', '1', { create: true });
    expect(created).toBe(true);
    expect(text).toContain('models:\n  new:\n    current_version: "1"\n');
    expect(text).toContain('# yaml-language-server: $schema=');
  });

  it('refuses a no-op promotion and unparseable YAML', () => {
    expect(() => promoteInText(TEXT, 'rec', '2025-01-01')).toThrow(/already the current version/);
    expect(() => promoteInText('models: [unclosed\n', 'rec', '1')).toThrow(/cannot edit/);
  });

  it('setVersions restores an entry, dropping previous_version when it had none', () => {
    const promoted = promoteInText(TEXT, 'rec', '2025-02-01').text;
    const back = setVersionsInText(promoted, 'rec', { current: '2025-01-01' });
    expect(back).not.toContain('previous_version');
    expect(back).toBe(TEXT);
  });
});
