/**
 * The command line: declares arguments and lazily imports one module per
 * command, so `modelsync --help` stays fast and a command's dependencies load
 * only when it runs. The daemon calls the same command functions.
 */
import { escapeControlKeepLines } from './util/escape.ts';
import { Command, CommanderError, Option } from 'commander';
import { InterruptedError, ModelsyncError, UsageError, errorMessage } from './errors.ts';
import { EXIT, processContext, type CommandContext } from './commands/context.ts';

type Handler = (opts: Record<string, unknown>, ctx: CommandContext) => Promise<number>;

let jsonRequested = false;

async function run(load: () => Promise<Handler>, opts: Record<string, unknown>): Promise<void> {
  jsonRequested = Boolean(opts.json);
  const ctx = processContext();
  const handler = await load();
  process.exitCode = await handler(opts, ctx);
}

// `modelsync list | head -1`: a reader that goes away early is not worth a stack trace.
process.stdout.on('error', (err: NodeJS.ErrnoException) => {
  if (err.code === 'EPIPE') process.exit(typeof process.exitCode === 'number' ? process.exitCode : 0);
  throw err;
});

const program = new Command()
  .name('modelsync')
  .description('Git is the source of truth for which ML model versions run on which edge site.')
  .version('0.1.0')
  .exitOverride();

/** `reads`: the command also reads a bare repository (at HEAD); the others commit, so need a checkout. */
const repoOpt = (reads = false): Option =>
  new Option('--repo <dir>', `registry checkout${reads ? ' or bare repository' : ''} (default: the checkout the current directory is in)`);

program
  .command('init')
  .description('create a registry repo with the standard layout, .gitattributes and hooks')
  .argument('[dir]', 'directory to create or initialise', '.')
  .option('--branch <name>', 'default branch', 'main')
  .option('--bare-example', 'do not copy the example models, sites and templates')
  .action((dir, o) => run(async () => (await import('./commands/init.ts')).initCommand, { ...o, dir }));

program
  .command('validate')
  .description('check schemas and cross-references; errors as file:line:col: path: message')
  .addOption(repoOpt(true))
  .option('--rev <rev>', 'validate a commit (branch, tag or oid) instead of the working tree')
  .option('--staged', 'validate what is staged (what the next commit would record)')
  .option('--verify-signatures', 'also check commit signatures as a verifying site would: the tip (--rev, default HEAD), or every commit since --base')
  .option('--allowed-signers <file>', "with --verify-signatures: trusted SSH keys (ssh-keygen's allowed_signers format)")
  .option('--gpg-keys <file>', 'with --verify-signatures: trusted armored OpenPGP public keys')
  .option('--base <rev>', 'with --verify-signatures: check every commit in <rev>..HEAD (a pull request: its target branch)')
  .option('--json', 'print one JSON document')
  .action((o) => run(async () => (await import('./commands/validate.ts')).validateCommand, o));

program
  .command('publish')
  .description('add a version: hash files, write LFS pointers and objects, manifest, promote, commit')
  .argument('<model>')
  .argument('<version>')
  .argument('<files...>')
  .addOption(repoOpt())
  .option('--no-promote', 'publish without making it current')
  .option('--push', 'push Git refs and LFS objects to the remote afterwards')
  .option('--remote <name>', 'remote to push to', 'origin')
  .option('--token-file <file>', 'with --push: file holding the hub token (or MODELSYNC_TOKEN)')
  .option('--framework <text>', 'manifest framework field')
  .option('--source <text>', 'manifest source field')
  .option('--description <text>', 'manifest description')
  .option('--message <msg>', 'commit message')
  .option('--sign', "sign the commit with git's signing config (user.signingkey, gpg.format), as git commit -S (default when commit.gpgsign is true)")
  .option('--no-sign', 'do not sign, even when commit.gpgsign is true')
  .option('--json', 'print one JSON document')
  .action((model, version, files, o) => run(async () => (await import('./commands/publish.ts')).publishCommand, { ...o, model, version, files }));

program
  .command('promote')
  .description('make a published version current (previous <- old current) and commit')
  .argument('<model>')
  .argument('<version>')
  .addOption(repoOpt())
  .option('--push', 'push afterwards')
  .option('--remote <name>', 'remote to push to', 'origin')
  .option('--token-file <file>', 'with --push: file holding the hub token (or MODELSYNC_TOKEN)')
  .option('--sign', "sign the commit with git's signing config (user.signingkey, gpg.format), as git commit -S (default when commit.gpgsign is true)")
  .option('--no-sign', 'do not sign, even when commit.gpgsign is true')
  .option('--now', 'switch every site at once, even when the model has a rollout policy')
  .option('--json', 'print one JSON document')
  .action((model, version, o) => run(async () => (await import('./commands/promote.ts')).promoteCommand, { ...o, model, version }));

program
  .command('rollout')
  .description('staged rollouts: status, advance, pause, resume, abort <model>; run [--once] (the controller, for registries on other hosts)')
  .argument('<action>', 'status | advance | pause | resume | abort | run')
  .argument('[model]', 'the model (status without one lists every rollout in progress)')
  .addOption(repoOpt())
  .option('--hub <url>', 'where the sites report (status: show each site; run: required)')
  .option('--once', 'run: one round, then exit (cron, CI)')
  .option('--interval <duration>', 'run: time between rounds', '30s')
  .option('--push', 'push each step (run: pull before each round)')
  .option('--remote <name>', 'remote to push to', 'origin')
  .option('--token-file <file>', 'hub token, for --hub and --push (or MODELSYNC_TOKEN)')
  .option('--sign', "sign each step with git's signing config (default when commit.gpgsign is true), so sites with verify: accept it")
  .option('--no-sign', 'do not sign, even when commit.gpgsign is true')
  .option('--json', 'print one JSON document')
  .action((action, model, o) => run(async () => (await import('./commands/rollout.ts')).rolloutCommand, { ...o, action, model }));

program
  .command('rollback')
  .description('revert the commit that last promoted the model, or promote --to <version>')
  .argument('<model>')
  .option('--to <version>', 'promote this version instead of reverting')
  .addOption(repoOpt())
  .option('--push', 'push afterwards')
  .option('--remote <name>', 'remote to push to', 'origin')
  .option('--token-file <file>', 'with --push: file holding the hub token (or MODELSYNC_TOKEN)')
  .option('--sign', "sign the commit with git's signing config (user.signingkey, gpg.format), as git commit -S (default when commit.gpgsign is true)")
  .option('--no-sign', 'do not sign, even when commit.gpgsign is true')
  .option('--json', 'print one JSON document')
  .action((model, o) => run(async () => (await import('./commands/rollback.ts')).rollbackCommand, { ...o, model }));

program
  .command('list')
  .description('models the registry declares, with current and previous versions')
  .addOption(repoOpt(true))
  .option('--rev <rev>', 'read a commit instead of the working tree')
  .option('--json', 'print one JSON document')
  .action((o) => run(async () => (await import('./commands/list.ts')).listCommand, o));

program
  .command('versions')
  .description('published versions of a model, oldest first')
  .argument('<model>')
  .addOption(repoOpt(true))
  .option('--rev <rev>', 'read a commit instead of the working tree')
  .option('--json', 'print one JSON document')
  .action((model, o) => run(async () => (await import('./commands/list.ts')).versionsCommand, { ...o, model }));

const collect = (value: string, previous: string[] = []): string[] => [...previous, value];

program
  .command('plan')
  .description('what a change deploys where: per site and model base -> head, bytes to fetch, rendered template diffs')
  .addOption(repoOpt(true))
  .option('--base <rev>', 'what the sites run now (default: the merge base with the default branch)')
  .option('--head <rev>', 'the change (default: the working tree)')
  .option('--site <site>', 'only this site (repeatable)', collect)
  .addOption(new Option('--format <format>', 'output format').choices(['text', 'markdown', 'json']).default('text'))
  .option('--json', 'same as --format json')
  .action((o) => run(async () => (await import('./commands/plan.ts')).planCommand, o));

program
  .command('render')
  .description("render a site's templates as its agent would, printed or written under --out")
  .requiredOption('--site <site>', 'the site')
  .addOption(repoOpt(true))
  .option('--rev <rev>', 'read a commit instead of the working tree')
  .option('--store <dir>', "the site's store path the templates see", '/var/lib/modelsync')
  .option('--out <dir>', 'write each template under this directory instead of printing it')
  .option('--json', 'print one JSON document')
  .action((o) => run(async () => (await import('./commands/render.ts')).renderCommand, o));

program
  .command('sites')
  .description('site x model -> declared version, overrides and group defaults marked')
  .addOption(repoOpt(true))
  .option('--rev <rev>', 'read a commit instead of the working tree')
  .option('--json', 'print one JSON document')
  .action((o) => run(async () => (await import('./commands/sites.ts')).sitesCommand, o));

program
  .command('serve')
  .description('the hub: Git smart HTTP, Git LFS, events, fleet status')
  .requiredOption('--data <dir>', 'where repositories, LFS objects and fleet status live')
  .option('--listen <host:port>', 'address to listen on', '127.0.0.1:9080')
  .option('--tokens <file>', 'tokens file (without one, loopback clients only)')
  .option('--public-url <url>', 'base URL clients use, when behind a proxy')
  .option('--rollout-interval <seconds>', 'seconds between rounds of the rollout controller over the hub\'s repos (0: off)', '10')
  .option('--notify <file>', 'notify.yaml: webhooks for degraded, recovered, conflict, stale and rollout events')
  .option('--objects <where>', 'where LFS objects live: fs (under --data) or s3://bucket[/prefix] (credentials and region as the AWS SDK reads them)', 'fs')
  .option('--s3-endpoint <url>', 'an S3-compatible store (MinIO, Ceph RGW, R2 …); default: AWS_ENDPOINT_URL_S3 / AWS_ENDPOINT_URL, else AWS S3')
  .option('--s3-path-style', 'path-style bucket URLs (the default when an endpoint is set)')
  .option('--no-s3-path-style', 'virtual-hosted bucket URLs even with an endpoint')
  .option('--mirror <url>', 'run as a read-only mirror of this upstream registry (https://hub.example/registry.git) for a site\'s local agents')
  .option('--token-file <file>', 'with --mirror: the upstream token (a site token for the sites behind the mirror, or admin)')
  .option('--mirror-interval <seconds>', 'with --mirror: seconds between scheduled syncs, the safety net under upstream events', '60')
  .option('--max-connections <n>', 'open connections at once (default 4096; an agent holds one or two); keep the open-file limit above it plus 1024')
  .action((o) => run(async () => (await import('./commands/serve.ts')).serveCommand, o));

program
  .command('reconcile')
  .description('one pass: fetch, verify and activate what the registry declares for a site')
  .option('--site <site>', 'site name (sites/<site>.yaml)')
  .option('--registry <url|path>', 'registry URL or local path (checkout or bare repo)')
  .option('--store <dir>', 'the site store')
  .option('--config <file>', "take site, registry, branch, store and token from an agent.yaml (flags win)")
  .option('--branch <name>', 'registry branch (default main)')
  .option('--token-file <file>', 'file holding the hub token (or MODELSYNC_TOKEN)')
  .option('--username <name>', 'HTTP Basic user name sent with the token to the registry host (or MODELSYNC_USERNAME)')
  .option('--concurrency <n>', 'parallel downloads', '8')
  .option('--dry-run', 'print the plan, change nothing')
  .option('--force', 'apply the declared version over conflicts')
  .option('--verify-allowed-signers <file>', "apply only commits signed by these SSH keys (ssh-keygen's allowed_signers format)")
  .option('--verify-gpg-keys <file>', 'apply only commits signed by these armored OpenPGP public keys')
  .option('--verify-mode <mode>', 'tip (default: the new tip) or every (each commit since the last applied one)')
  .option('--json', 'print one JSON document')
  .action((o) => run(async () => (await import('./commands/reconcile.ts')).reconcileCommand, o));

program
  .command('agent')
  .description('the site daemon: schedule, hub events, webhook, watch, services, metrics')
  .option('--config <file>', 'agent.yaml (or MODELSYNC_CONFIG); every key is also a flag and a MODELSYNC_* variable')
  .option('--once', 'run one pass with services and health checks, then exit (0 ok, 1 error, 3 conflicts, 4 degraded)')
  .option('--print-systemd [kind]', 'print a systemd unit: "service" (default) or "timer" (oneshot + timer on the schedule)')
  .option('--install-systemd [dir]', 'write the units to dir (default /etc/systemd/system) and print how to enable them')
  .option('--systemd-user <user>', 'User= for the systemd units')
  .option('--json', 'with --once: print the pass result as one JSON document')
  .option('--site <site>', 'site name')
  .option('--registry <url|path>', 'registry URL or local path')
  .option('--branch <name>', 'registry branch (default main)')
  .option('--token-file <file>', 'file holding the hub token (or MODELSYNC_TOKEN)')
  .option('--username <name>', 'HTTP Basic user name sent with the token to the registry host')
  .option('--store <dir>', 'the site store')
  .option('--config-dir <dir>', 'where templates are rendered')
  .option('--listen <host:port>', '/status, /healthz, /metrics and the webhook')
  .option('--webhook-secret-file <file>', 'HMAC secret for X-Hub-Signature-256')
  .option('--hub <url>', 'hub base URL: events and status reports')
  .option('--services <json>', 'services as a JSON list (same shape as agent.yaml)')
  .option('--serving <json>', 'serving views (OVMS, Triton repositories) as a JSON list (same shape as agent.yaml)')
  .option('--schedule <cron>', "cron expression overriding the site file's")
  .option('--jitter-s <seconds>', 'random delay before a scheduled pass, at most (default 30)')
  .option('--templates', 'render the registry templates (default)')
  .option('--no-templates', 'do not render the registry templates')
  .option('--verify-interval-s <seconds>', 'seconds between re-verifications of active files, 0 = off (default 3600)')
  .option('--concurrency <n>', 'parallel downloads (default 8)')
  .option('--pass-timeout <duration>', 'overall deadline of a pass: seconds, or 90s, 30m, 1h (default 30m); then it stops, keeps partial downloads and releases the lock')
  .option('--log-level <level>', 'fatal, error, warn, info, debug, trace or silent')
  .option('--verify-allowed-signers <file>', "apply only commits signed by these SSH keys (ssh-keygen's allowed_signers format)")
  .option('--verify-gpg-keys <file>', 'apply only commits signed by these armored OpenPGP public keys')
  .option('--verify-mode <mode>', 'tip (default: the new tip) or every (each commit since the last applied one)')
  .action((o) => run(async () => (await import('./commands/agent.ts')).agentCommand, o));

program
  .command('status')
  .description('fleet status from a hub, or one site from its store')
  .option('--hub <url>', 'hub base URL')
  .option('--store <dir>', 'a site store')
  .option('--token-file <file>', 'token for the hub (or MODELSYNC_TOKEN)')
  .option('--watch', 'with --hub: keep following the fleet (Ctrl-C to stop)')
  .option('--json', 'print one JSON document')
  .action((o) => run(async () => (await import('./commands/status.ts')).statusCommand, o));

program
  .command('wait')
  .description('block until every selected site is Ready on a version (exit 0), any is Degraded (4), or the timeout (5)')
  .argument('<model>')
  .argument('<version>')
  .requiredOption('--hub <url>', 'hub base URL')
  .option('--sites <selector>', 'site names and * globs, comma-separated (default: every site that carries the model and is not told by an override or pin to run another version)')
  .option('--timeout <duration>', 'give up after this long: 90s, 10m, 1h', '10m')
  .option('--interval <duration>', 'how often to ask the hub', '1s')
  .option('--token-file <file>', 'token for the hub (or MODELSYNC_TOKEN)')
  .option('--json', 'print the verdict as one JSON document')
  .action((model, version, o) => run(async () => (await import('./commands/wait.ts')).waitCommand, { ...o, model, version }));

const token = program.command('token').description("manage the hub's tokens file (the hub picks up changes without a restart)");
token
  .command('add')
  .description('add a token; prints its secret once, stores only its sha256')
  .argument('<name>')
  .requiredOption('--role <role>', 'site, publisher or admin')
  .option('--sites <list>', 'for role site: the sites it may report for, comma-separated (default: its name)')
  .requiredOption('--tokens <file>', "the hub's tokens file (created if missing)")
  .option('--json', 'print name, role and secret as one JSON document')
  .action((name, o) => run(async () => (await import('./commands/token.ts')).tokenCommand, { ...o, name, action: 'add' }));
token
  .command('list')
  .description('names, roles and sites (never secrets)')
  .requiredOption('--tokens <file>', "the hub's tokens file")
  .option('--json', 'print one JSON document')
  .action((o) => run(async () => (await import('./commands/token.ts')).tokenCommand, { ...o, action: 'list' }));
token
  .command('revoke')
  .description('remove a token; a running hub refuses it at once')
  .argument('<name>')
  .requiredOption('--tokens <file>', "the hub's tokens file")
  .action((name, o) => run(async () => (await import('./commands/token.ts')).tokenCommand, { ...o, name, action: 'revoke' }));

program
  .command('gc')
  .description('retention: keep current, previous and the N newest versions; report bytes freed')
  .requiredOption('--store <dir>', 'the site store')
  .option('--keep <n>', 'versions kept besides current and previous')
  .option('--unmanaged', 'also remove models the site no longer selects, current included')
  .option('--dry-run', 'report what would be removed')
  .option('--json', 'print one JSON document')
  .action((o) => run(async () => (await import('./commands/gc.ts')).gcCommand, o));

program
  .command('pin')
  .description('local break-glass pin of a model to a version (reported as drift)')
  .argument('<model>')
  .argument('<version>')
  .requiredOption('--store <dir>', 'the site store')
  .option('--json', 'print one JSON document')
  .action((model, version, o) => run(async () => (await import('./commands/pin.ts')).pinCommand, { ...o, model, version }));

program
  .command('unpin')
  .description('remove a local pin')
  .argument('<model>')
  .requiredOption('--store <dir>', 'the site store')
  .option('--json', 'print one JSON document')
  .action((model, o) => run(async () => (await import('./commands/pin.ts')).unpinCommand, { ...o, model }));

const hooks = program.command('hooks').description('git hooks of the registry repo');
hooks
  .command('install')
  .description("set core.hooksPath to the repo's hooks/")
  .addOption(repoOpt())
  .action((o) => run(async () => (await import('./commands/hooks.ts')).hooksInstallCommand, o));

program
  .command('demo')
  .description('the quick start: a hub, three sites, a publish, a conflict and a rollback, on loopback')
  .option('--keep', 'leave hub and agents running (dashboard live) until Ctrl-C, and keep the demo directory')
  .action((o) => run(async () => (await import('./commands/demo.ts')).demoCommand, o));

// A mistyped flag gets commander's error (with its "did you mean") and one line saying where the
// options are, not the whole help: the error must stay the line a person reads.
const hintAfterErrors = (c: Command, path: string): void => {
  c.showHelpAfterError(`(run 'modelsync ${path}--help' for the ${path ? 'options' : 'commands'})`);
  for (const sub of c.commands) hintAfterErrors(sub, `${path}${sub.name()} `);
};
hintAfterErrors(program, '');

// No top-level await: dist/ is one CommonJS bundle, compiled once into V8's code cache (bin/run-bundle.js).
async function main(): Promise<void> {
  try {
    await program.parseAsync(process.argv);
  } catch (err) {
    if (err instanceof CommanderError) {
      // Help and --version exit 0; anything else commander refused is a usage error.
      process.exitCode = err.exitCode === 0 ? EXIT.ok : EXIT.usage;
    } else {
      // 130 is what a shell reports for a command stopped by Ctrl-C (128 + SIGINT).
      const code = err instanceof UsageError ? EXIT.usage : err instanceof InterruptedError ? 130 : EXIT.error;
      if (jsonRequested) {
        const body = err instanceof ModelsyncError ? err.toJSON() : { code: 'InternalError', message: errorMessage(err) };
        process.stdout.write(`${JSON.stringify({ ok: false, error: body }, null, 2)}\n`);
      } else if (err instanceof ModelsyncError) {
        process.stderr.write(`modelsync: ${escapeControlKeepLines(err.message)} [${err.code}]\n`);
      } else {
        process.stderr.write(`modelsync: internal error: ${escapeControlKeepLines(err instanceof Error ? (err.stack ?? err.message) : String(err))}\n`);
      }
      process.exitCode = code;
    }
  }
}

void main();
