/**
 * Helpers for end-to-end agent tests: an agent config with the schema's
 * defaults, registries with a couple of models, waiting for conditions.
 */
import { readlinkSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll } from 'vitest';
import { Agent, type AgentDeps } from '../../../src/agent/daemon.ts';
import type { AgentConfig } from '../../../src/agent/config.ts';
import { AgentConfigFile } from '../../../src/registry/schema.ts';
import { silentLogger, type Logger } from '../../../src/log.ts';
import pino from 'pino';
import { tempDir } from '../../helpers/env.ts';
import { TestRegistry } from '../../reconcile/helpers/registry.ts';

const agents: Agent[] = [];
afterAll(async () => {
  await Promise.all(agents.splice(0).map((a) => a.stop()));
});

export function agentConfig(fields: Record<string, unknown>): AgentConfig {
  return { ...AgentConfigFile.parse({ jitter_s: 0, verify_interval_s: 0, ...fields }), origin: 'test' };
}

/** An agent, stopped after the test file (or by the test). */
export async function startAgent(fields: Record<string, unknown>, deps: AgentDeps = {}, start = true): Promise<Agent> {
  const agent = await Agent.create(agentConfig(fields), { logger: silentLogger, retryBaseMs: 100, retryMaxMs: 400, eventsBackoffBaseMs: 50, eventsBackoffMaxMs: 200, ...deps });
  agents.push(agent);
  if (start) await agent.start();
  return agent;
}

/**
 * A registry (a fresh temp dir named by `prefix`) with model face at the
 * given versions (`size` bytes each, seeded by the version), site alpha
 * running face 1, committed as "v1".
 */
export function faceRegistry(prefix: string, env: NodeJS.ProcessEnv, opts: { versions?: string[]; size?: number } = {}): TestRegistry {
  const reg = TestRegistry.init(tempDir(prefix), env);
  for (const v of opts.versions ?? ['1']) reg.addVersion('face', v, { 'model.bin': bytes(opts.size ?? 10_000, Number(v)) });
  reg.setCurrent('face', '1');
  reg.site('alpha', {});
  reg.commit('v1');
  return reg;
}

export function bytes(n: number, seed: number): Buffer {
  const b = Buffer.alloc(n);
  for (let i = 0; i < n; i++) b[i] = (i * 131 + seed * 7 + (i >> 8)) & 0xff;
  return b;
}

export function current(store: string, model: string): string | undefined {
  try {
    return readlinkSync(join(store, 'models', model, 'current'));
  } catch {
    return undefined;
  }
}

export async function waitFor(cond: () => boolean | Promise<boolean>, what: string, ms = 15_000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > end) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** A real pino logger whose JSON lines are kept: tests assert on what an operator would read. */
export function captureLogger(): { logger: Logger; lines: () => Array<Record<string, unknown> & { msg: string; level: number }>; text: () => string } {
  const chunks: string[] = [];
  const logger = pino({ level: 'debug' }, { write: (s: string) => void chunks.push(s) });
  const text = (): string => chunks.join('');
  return { logger, text, lines: () => text().split('\n').filter(Boolean).map((l) => JSON.parse(l) as Record<string, unknown> & { msg: string; level: number }) };
}
