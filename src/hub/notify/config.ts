/**
 * `serve --notify notify.yaml`: where the hub sends word of a site going
 * Degraded, recovering, in conflict, silent (stale) and of rollout steps.
 *
 * ```yaml
 * stale_after: 3                 # schedule periods without a report before "stale" (default 3)
 * webhooks:
 *   - url: https://chat.example/hooks/abc
 *     events: [degraded, recovered, conflict, stale, rollout]
 *     format: slack               # json (default) | slack
 *     secret_file: /etc/modelsync/notify-secret   # or secret: "..."; signs X-Modelsync-Signature-256
 * ```
 */
import { readFile } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { z } from 'zod';
import { ConfigError, formatProblem } from '../../errors.ts';
import { parseYamlFile } from '../../registry/yaml-file.ts';
import { zodProblems } from '../../registry/zod-problems.ts';

export const NOTIFY_EVENTS = ['degraded', 'recovered', 'conflict', 'stale', 'rollout'] as const;
export type NotifyEventKind = (typeof NOTIFY_EVENTS)[number];

const Webhook = z.strictObject({
  url: z.string().regex(/^https?:\/\/[^\s/]+(\/\S*)?$/, 'must be an http(s) URL'),
  events: z.array(z.enum(NOTIFY_EVENTS)).min(1).default([...NOTIFY_EVENTS]),
  format: z.enum(['json', 'slack']).default('json'),
  secret: z.string().min(16, 'at least 16 characters').optional(),
  secret_file: z.string().min(1).optional(),
});

export const NotifyFile = z.strictObject({
  stale_after: z.number().min(1).max(1000).default(3),
  webhooks: z.array(Webhook).max(50),
});

export interface WebhookConfig {
  url: string;
  events: ReadonlySet<NotifyEventKind>;
  format: 'json' | 'slack';
  /** Null: deliveries are not signed. */
  secret: string | null;
}

export interface NotifyConfig {
  staleAfter: number;
  webhooks: WebhookConfig[];
}

export async function loadNotifyFile(path: string): Promise<NotifyConfig> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    throw new ConfigError(`cannot read notify file ${path}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`, { file: path });
  }
  const yf = parseYamlFile(path, text);
  if (yf.syntaxProblems.length > 0) throw new ConfigError(`notify file is not valid YAML:\n${yf.syntaxProblems.map(formatProblem).join('\n')}`, { file: path });
  const parsed = NotifyFile.safeParse(yf.value);
  if (!parsed.success) {
    const problems = zodProblems(yf, parsed.error);
    throw new ConfigError(`notify file is invalid:\n${problems.map(formatProblem).join('\n')}`, { file: path, problems });
  }
  const webhooks: WebhookConfig[] = [];
  for (const [i, w] of parsed.data.webhooks.entries()) {
    if (w.secret && w.secret_file) throw new ConfigError(formatProblem(yf.problem(['webhooks', i, 'secret_file'], 'give secret or secret_file, not both')), { file: path });
    let secret: string | null = w.secret ?? null;
    if (w.secret_file) {
      const f = resolve(dirname(path), w.secret_file);
      try {
        secret = (await readFile(f, 'utf8')).trim();
      } catch (err) {
        throw new ConfigError(formatProblem(yf.problem(['webhooks', i, 'secret_file'], `cannot read ${f}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`)), { file: path });
      }
      if (secret.length < 16) throw new ConfigError(formatProblem(yf.problem(['webhooks', i, 'secret_file'], `${f} holds fewer than 16 characters`)), { file: path });
    }
    webhooks.push({ url: w.url, events: new Set(w.events), format: w.format, secret });
  }
  return { staleAfter: parsed.data.stale_after, webhooks };
}
