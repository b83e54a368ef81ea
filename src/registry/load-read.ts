/** Reading a registry file with its problems collected, not thrown. */
import type { Problem } from '../errors.ts';
import { ValidationError } from '../errors.ts';
import type { RegistrySource } from './source.ts';
import { parseYamlFile, type YamlFile } from './yaml-file.ts';

export const at = (file: string, message: string, path = ''): Problem => ({ file, line: 1, col: 1, path, message });

/** readText, with a file too large to read turned into its problem (and treated as unreadable). */
export async function readTextOrProblem(source: RegistrySource, file: string, problems: Problem[]): Promise<string | null | 'too-large'> {
  try {
    return await source.readText(file);
  } catch (err) {
    if (!(err instanceof ValidationError)) throw err;
    problems.push(...err.problems);
    return 'too-large';
  }
}

export async function readYaml(source: RegistrySource, file: string, problems: Problem[]): Promise<YamlFile | null> {
  const read = await readTextOrProblem(source, file, problems);
  // Too large: a stand-in with no value, so the file counts as present (not "missing") but says nothing.
  const text = read === 'too-large' ? '' : read;
  if (text === null) return null;
  const yf = parseYamlFile(file, text);
  problems.push(...yf.syntaxProblems);
  return yf;
}

