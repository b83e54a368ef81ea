/**
 * `modelsync demo` (`npm run demo`): the quick start, on loopback, in a temp
 * directory. A hub; a registry created by `modelsync init` from the example
 * content and pushed; agents for alpha, beta and gamma subscribed to the
 * hub's events; a new face_recognition version published with `modelsync
 * publish --push` and every site timed to convergence; a conflict on beta
 * (a local pin, lifted); `modelsync rollback --push` and the sites following;
 * a summary. Registry commands run as the real CLI in child processes; the
 * hub and the agents run in this process. Everything is stopped and removed
 * at the end (`--keep` keeps the directory). Needs git (the hub serves Git
 * with git's http-backend) but not git-lfs: LFS is modelsync's own code.
 */
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import { mkdtemp, mkdir, readFile, rm, writeFile, copyFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { CLI_PATH, PROJECT_ROOT } from '../paths.ts';
import git from 'isomorphic-git';
import { Agent, type PassOutcome } from '../agent/daemon.ts';
import { renderFleet, type FleetSite } from '../agent/fleet.ts';
import { ModelsyncError, errorMessage } from '../errors.ts';
import { startHub, type Hub } from '../hub/index.ts';
import { createLogger, logFormatFor, type Logger } from '../log.ts';
import { formatBytes } from '../reconcile/format.ts';
import { AgentConfigFile } from '../registry/schema.ts';
import { pushBranch } from '../registry/push.ts';
import { EXIT, type CommandContext } from './context.ts';

const ROOT = PROJECT_ROOT;
const CLI = CLI_PATH;
const SITES = ['alpha', 'beta', 'gamma'] as const;
type Site = (typeof SITES)[number];
const NEW_VERSION = '2026-01-15';
const CONVERGE_TIMEOUT_MS = 30_000;

export interface DemoOptions {
  /** Leave hub and agents running until Ctrl-C (the dashboard stays live), and keep the directory. */
  keep?: boolean;
  /** Resolves to stop a kept demo (default: SIGINT or SIGTERM). */
  until?: Promise<unknown>;
}

interface Convergence {
  site: Site;
  ms: number;
  outcome: PassOutcome;
}

export async function demoCommand(opts: DemoOptions, ctx: CommandContext): Promise<number> {
  const root = await mkdtemp(join(tmpdir(), 'modelsync-demo-'));
  const demo = new Demo(root, ctx);
  let ok = false;
  try {
    await demo.run();
    ok = true;
    if (opts.keep) {
      ctx.out(`\nHub and agents keep running: open ${demo.dashboardUrl} to look around; Ctrl-C stops them.`);
      await (opts.until ?? interrupted());
    }
  } finally {
    await demo.stop();
    if (opts.keep) ctx.out(`\nKept ${root} (hub data, registry, site stores, rendered configs).`);
    else await rm(root, { recursive: true, force: true }).catch(() => {});
    if (ok) ctx.out(`Everything stopped${opts.keep ? '' : `; ${root} removed`}.`);
  }
  return EXIT.ok;
}

class Demo {
  private hub: Hub | undefined;
  private readonly agents = new Map<Site, Agent>();
  private readonly passes = new Map<Site, PassOutcome[]>();
  /** When the hub published each commit (ms since the epoch). */
  private readonly pushedAt = new Map<string, number>();
  private readonly logger: Logger;
  private readonly env: NodeJS.ProcessEnv;
  private readonly registry: string;
  private readonly latencies: Array<{ step: string; site: Site; ms: number }> = [];

  constructor(private readonly root: string, private readonly ctx: CommandContext) {
    // Only real problems reach the terminal; the narrative is ours.
    this.logger = createLogger({ level: ctx.env.MODELSYNC_LOG_LEVEL ?? 'error', format: logFormatFor({ stderrIsTTY: Boolean(process.stderr.isTTY), env: ctx.env }) });
    this.registry = join(root, 'registry');
    this.env = {
      ...ctx.env,
      HOME: join(root, 'home'),
      GIT_CONFIG_GLOBAL: join(root, 'home', '.gitconfig'),
      GIT_CONFIG_NOSYSTEM: '1',
      GIT_AUTHOR_NAME: 'modelsync demo',
      GIT_AUTHOR_EMAIL: 'demo@modelsync.invalid',
      GIT_COMMITTER_NAME: 'modelsync demo',
      GIT_COMMITTER_EMAIL: 'demo@modelsync.invalid',
      GIT_TERMINAL_PROMPT: '0',
      MODELSYNC_LOG_LEVEL: ctx.env.MODELSYNC_LOG_LEVEL ?? 'error',
    };
    delete this.env.MODELSYNC_TOKEN;
    delete this.env.MODELSYNC_CONFIG;
  }

  get dashboardUrl(): string {
    return `${this.hub?.url ?? ''}/`;
  }

  private out(line = ''): void {
    this.ctx.out(line);
  }

  private rel(p: string): string {
    return relative(this.root, p) || '.';
  }

  async run(): Promise<void> {
    const started = Date.now();
    this.out(`modelsync quick start — a hub, a registry and three sites on loopback, in ${this.root}`);

    // ---- 1. the hub
    this.out('\n1. A hub (modelsync serve: Git smart HTTP, Git LFS, events, fleet status)');
    this.hub = await startHub({ data: join(this.root, 'hub'), listen: '127.0.0.1:0', logger: this.logger, heartbeatMs: 5000 });
    this.hub.events.on('ref', (e) => this.pushedAt.set(e.after, Date.now()));
    this.out(`   listening on ${this.hub.url} (loopback only, no tokens needed)`);
    this.out(`   dashboard: ${this.dashboardUrl} (open it now to watch the sites converge; npm run demo -- --keep leaves it running)`);

    // ---- 2. the registry
    this.out('\n2. A registry from the example content, pushed to the hub');
    await mkdir(join(this.root, 'home'), { recursive: true });
    await this.cli(['init', this.rel(this.registry)]);
    await git.addRemote({ fs, dir: this.registry, remote: 'origin', url: `${this.hub.url}/registry.git` });
    const pushed = await pushBranch({ repoDir: this.registry, remote: 'origin', env: this.env, logger: this.logger });
    this.out(`   pushed ${pushed.branch} (${pushed.commit.slice(0, 12)}) to ${pushed.url} with ${pushed.uploaded} LFS objects`);

    // ---- 3. the sites
    this.out('\n3. Three sites, each with an agent subscribed to the hub');
    for (const site of SITES) await this.startAgent(site);
    await Promise.all([...this.agents.values()].map((a) => a.whenIdle()));
    await this.waitSubscribed();
    for (const site of SITES) {
      const s = this.agent(site).status();
      const models = s.models.map((m) => `${m.model} ${m.active ?? '-'}`).join(', ');
      this.out(`   ${site.padEnd(6)} ${s.health.padEnd(8)} ${models}`);
      if (s.health !== 'Ready') throw new ModelsyncError('DemoFailed', `${site} did not sync: ${s.lastError ?? s.health}`);
    }
    this.out(`   alpha renders sentinel configs: ${await this.renderedLine('alpha')}`);

    // ---- 4. publish
    this.out(`\n4. Publish face_recognition ${NEW_VERSION} (a retrained classifier: 2 of 4 files change)`);
    const files = await this.newVersionFiles();
    await this.cli(['publish', 'face_recognition', NEW_VERSION, ...files.map((f) => this.rel(f)), '--repo', this.rel(this.registry), '--push']);
    const published = await this.converge('publish');
    for (const c of published) {
      const fr = c.outcome.result.models.find((m) => m.model === 'face_recognition');
      let what: string;
      if (!fr) what = 'nothing to do (an outpost: mobilenet_ssd only)';
      else if (fr.outcome === 'activated') what = `face_recognition ${fr.from} → ${fr.active}, fetched ${formatBytes(c.outcome.result.bytesFetched)}`;
      else what = `face_recognition stays ${fr.active} (${fr.desiredReason === 'override' ? 'site override' : fr.reason})`;
      this.out(`   ${c.site.padEnd(6)} converged ${String(c.ms).padStart(5)} ms after the push: ${what}`);
    }
    this.out(`   alpha ${this.serviceLine('alpha')}; ${await this.renderedLine('alpha')}`);

    // ---- 5. a conflict
    this.out('\n5. A conflict on gamma: a break-glass pin on the site, then lifted');
    const gammaStore = this.store('gamma');
    await this.cli(['pin', 'face_recognition', NEW_VERSION, '--store', this.rel(gammaStore)]);
    await this.webhook('gamma');
    const pinned = this.agent('gamma').status().models.find((m) => m.model === 'face_recognition');
    this.out(`   gamma runs face_recognition ${pinned?.active ?? '-'} (its own pin; gamma's site file says ${pinned?.desired === NEW_VERSION ? '2025-11-20' : pinned?.desired})`);
    await this.cli(['unpin', 'face_recognition', '--store', this.rel(gammaStore)]);
    const conflict = await this.webhook('gamma');
    const c = conflict.result.conflicts.find((x) => x.model === 'face_recognition');
    if (!c) throw new ModelsyncError('DemoFailed', `expected a conflict on gamma, got ${conflict.result.status}`);
    this.out(`   gamma: CONFLICT — ${c.detail}`);
    this.out(`   gamma reports health ${this.agent('gamma').status().health} and keeps running ${c.active}; the registry decides again once it declares ${c.active} or newer, or with reconcile --force`);

    // ---- 6. rollback
    this.out('\n6. Roll back face_recognition with modelsync rollback');
    await this.cli(['rollback', 'face_recognition', '--repo', this.rel(this.registry), '--push']);
    const rolled = await this.converge('rollback');
    for (const r of rolled) {
      const fr = r.outcome.result.models.find((m) => m.model === 'face_recognition');
      let what: string;
      if (!fr) what = 'nothing to do';
      else if (fr.outcome === 'activated') what = `face_recognition ${fr.from} → ${fr.active} (followed the revert)`;
      else if (fr.outcome === 'conflict') what = `face_recognition stays ${fr.active} (still its local change: conflict, reported)`;
      else what = `face_recognition stays ${fr.active}`;
      this.out(`   ${r.site.padEnd(6)} converged ${String(r.ms).padStart(5)} ms after the push: ${what}`);
    }
    this.out(`   alpha ${this.serviceLine('alpha')}; ${await this.renderedLine('alpha')}`);

    // ---- summary
    this.out('\nSummary');
    const res = await fetch(`${this.hub.url}/api/v1/sites`);
    const { sites } = (await res.json()) as { sites: FleetSite[] };
    this.out('   the fleet as the hub sees it (modelsync status --hub):');
    for (const line of renderFleet(sites).split('\n')) this.out(`     ${line}`);
    const worst = (step: string): number => Math.max(...this.latencies.filter((l) => l.step === step).map((l) => l.ms));
    this.out(`   push → every site converged: publish ${worst('publish')} ms, rollback ${worst('rollback')} ms (worst of three sites)`);
    this.out(`   dashboard: ${this.dashboardUrl}`);
    this.out(`   done in ${((Date.now() - started) / 1000).toFixed(1)} s. Next: docs/agent.md (agent.yaml, services, health checks, systemd), docs/site.md, docs/hub.md`);
  }

  private store(site: Site): string {
    return join(this.root, 'sites', site, 'store');
  }

  private agent(site: Site): Agent {
    return this.agents.get(site)!;
  }

  private async startAgent(site: Site): Promise<void> {
    const dir = join(this.root, 'sites', site);
    const configDir = join(dir, 'rendered');
    await mkdir(dir, { recursive: true });
    // alpha runs a stand-in "sentinel": its restart is logged, its health check reads the rendered
    // config and checks the model file it names exists. Real sites put systemctl and a smoke test here.
    const services = site === 'alpha'
      ? [{
        name: 'sentinel',
        models: ['face_detection', 'face_recognition', 'openface_torch'],
        restart: [process.execPath, '-e', 'require("fs").appendFileSync(process.argv[1], new Date().toISOString()+"\\n")', join(dir, 'sentinel-restarts.log')],
        health: {
          command: [process.execPath, '-e', 'const fs=require("fs");const m=/recognizer: (.*)/.exec(fs.readFileSync(process.argv[1],"utf8"));fs.statSync(m[1].trim())', join(configDir, 'sentinel/tasks/FaceRecon.yaml')],
          timeout_s: 10,
          interval_s: 0.2,
        },
      }]
      : [];
    const cfg = AgentConfigFile.parse({
      site,
      registry: `${this.hub!.url}/registry.git`,
      store: this.store(site),
      config_dir: configDir,
      hub: this.hub!.url,
      listen: '127.0.0.1:0',
      services,
      jitter_s: 5,
      verify_interval_s: 0,
    });
    const agent = await Agent.create({ ...cfg, origin: 'demo' }, {
      logger: this.logger,
      env: this.env,
      onPass: (o) => this.passes.set(site, [...(this.passes.get(site) ?? []), o]),
    });
    this.agents.set(site, agent);
    this.passes.set(site, []);
    await agent.start();
  }

  private async waitSubscribed(): Promise<void> {
    const end = Date.now() + 10_000;
    while (![...this.agents.values()].every((a) => a.status().hub?.connected)) {
      if (Date.now() > end) throw new ModelsyncError('DemoFailed', 'the agents did not subscribe to the hub event stream');
      await sleep(10);
    }
  }

  /** Wait until every site finished a pass at the commit the last push published; time it from the push. */
  private async converge(step: string): Promise<Convergence[]> {
    const head = await git.resolveRef({ fs, dir: this.registry, ref: 'HEAD' });
    const end = Date.now() + CONVERGE_TIMEOUT_MS;
    const out: Convergence[] = [];
    for (const site of SITES) {
      for (;;) {
        const hit = this.passes.get(site)!.find((o) => o.result.commit === head);
        const at = this.pushedAt.get(head);
        if (hit && at !== undefined) {
          const ms = Math.max(0, hit.finishedAt - at);
          out.push({ site, ms, outcome: hit });
          this.latencies.push({ step, site, ms });
          break;
        }
        if (Date.now() > end) throw new ModelsyncError('DemoFailed', `${site} did not reach commit ${head.slice(0, 12)} within ${CONVERGE_TIMEOUT_MS / 1000} s: ${this.agent(site).status().lastError ?? 'no pass'}`);
        await sleep(5);
      }
    }
    return out;
  }

  /** Trigger a pass through the agent's webhook and wait for it. */
  private async webhook(site: Site): Promise<PassOutcome> {
    const agent = this.agent(site);
    await agent.whenIdle();
    const before = this.passes.get(site)!.length;
    const res = await fetch(`${agent.url}/api/v1/reconcile`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' });
    if (res.status !== 202) throw new ModelsyncError('DemoFailed', `webhook answered ${res.status}`);
    this.out(`   POST ${agent.url}/api/v1/reconcile → ${res.status} (webhook: a pass on ${site})`);
    const end = Date.now() + CONVERGE_TIMEOUT_MS;
    while (this.passes.get(site)!.length === before) {
      if (Date.now() > end) throw new ModelsyncError('DemoFailed', `no pass on ${site} after the webhook`);
      await sleep(5);
    }
    await agent.whenIdle();
    return this.passes.get(site)!.at(-1)!;
  }

  private serviceLine(site: Site): string {
    const last = this.agent(site).status().services.filter((s) => s.phase === 'switch').at(-1);
    if (!last) return 'no service restarted';
    return `${last.service} ${last.action === 'restart' ? 'restarted' : last.action}${last.health ? (last.health.ok ? ', health check passed' : `, health check FAILED: ${last.health.message}`) : ''}`;
  }

  private async renderedLine(site: Site): Promise<string> {
    const file = join(this.root, 'sites', site, 'rendered', 'sentinel/tasks/FaceRecon.yaml');
    const text = await readFile(file, 'utf8').catch(() => '');
    const v = /model_version: "?([^"\n]+)"?/.exec(text)?.[1];
    return v ? `rendered/sentinel/tasks/FaceRecon.yaml says model_version ${v}` : 'no FaceRecon.yaml rendered';
  }

  /** The example's 2025-12-08 files, with the classifier and the face list changed. */
  private async newVersionFiles(): Promise<string[]> {
    const src = join(ROOT, 'registry', 'face_recognition', '2025-12-08');
    const dir = join(this.root, 'new');
    await mkdir(dir, { recursive: true });
    const out: string[] = [];
    for (const name of ['baselines.hdf5', 'facedata.hdf5', 'facelist.csv', 'facemodel.pickle']) {
      const dest = join(dir, name);
      await copyFile(join(src, name), dest);
      out.push(dest);
    }
    const list = await readFile(join(dir, 'facelist.csv'), 'utf8');
    const n = list.trim().split('\n').length;
    await writeFile(join(dir, 'facelist.csv'), `${list.trimEnd()}\n${n},demo,2026-01-15\n`);
    const model = await readFile(join(dir, 'facemodel.pickle'));
    await writeFile(join(dir, 'facemodel.pickle'), Buffer.concat([model, Buffer.from(`retrained ${NEW_VERSION}\n`)]));
    return out;
  }

  /** Run the real CLI in a child process (never blocking the hub and agents in this one). */
  private async cli(args: string[]): Promise<string> {
    this.out(`   $ modelsync ${args.join(' ')}`);
    const r = await new Promise<{ code: number; stdout: string; stderr: string }>((done, fail) => {
      const child = spawn(process.execPath, [CLI, ...args], { cwd: this.root, env: this.env, stdio: ['ignore', 'pipe', 'pipe'] });
      let stdout = '';
      let stderr = '';
      child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
      child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
      child.on('error', fail);
      child.on('close', (code) => done({ code: code ?? -1, stdout, stderr }));
    });
    for (const line of r.stdout.trim().split('\n').filter(Boolean).slice(0, 6)) this.out(`     ${line}`);
    if (r.code !== 0) throw new ModelsyncError('DemoFailed', `modelsync ${args[0]} exited ${r.code}:\n${r.stderr || r.stdout}`);
    return r.stdout;
  }

  async stop(): Promise<void> {
    await Promise.all([...this.agents.values()].map((a) => a.stop().catch((err: unknown) => this.logger.error({ err: errorMessage(err) }, 'stopping an agent'))));
    await this.hub?.close().catch(() => {});
  }
}

function interrupted(): Promise<void> {
  return new Promise((resolve) => {
    const on = (): void => {
      process.off('SIGINT', on);
      process.off('SIGTERM', on);
      resolve();
    };
    process.on('SIGINT', on);
    process.on('SIGTERM', on);
  });
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
