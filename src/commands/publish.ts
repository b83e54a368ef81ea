import { resolve } from 'node:path';
import { withInterrupts } from '../registry/interrupt.ts';
import { publishVersion } from '../registry/publish.ts';
import { pushAfterCommit } from '../registry/push.ts';
import { resolveRepoDir } from '../registry/open.ts';
import { commandSigner } from '../trust/sign.ts';
import { EXIT, printJson, type CommandContext } from './context.ts';
import { pushAuth } from './promote.ts';

export interface PublishOptions {
  model?: string;
  version?: string;
  files?: string[];
  repo?: string;
  promote?: boolean;
  push?: boolean;
  remote?: string;
  tokenFile?: string;
  /** Sign the commit with git's signing config (user.signingkey, gpg.format); default: as commit.gpgsign says. */
  sign?: boolean;
  framework?: string;
  source?: string;
  description?: string;
  message?: string;
  json?: boolean;
}

export async function publishCommand(opts: PublishOptions, ctx: CommandContext): Promise<number> {
  const repoDir = await resolveRepoDir(ctx.cwd, opts.repo);
  const auth = await pushAuth(opts, repoDir, ctx);
  // Before anything is committed: a missing signing key stops the command, not a commit half made.
  const sign = await commandSigner(opts.sign, repoDir, ctx.env);
  const r = await withInterrupts(`publish ${opts.model} ${opts.version}`, (signal) =>
    publishVersion({
      repoDir, model: opts.model ?? '', version: opts.version ?? '', files: (opts.files ?? []).map((f) => resolve(ctx.cwd, f)),
      promote: opts.promote !== false, framework: opts.framework, source: opts.source, description: opts.description,
      message: opts.message, env: ctx.env, signal, sign,
    }),
  );
  const pushed = opts.push
    ? await pushAfterCommit({ repoDir, remote: opts.remote ?? 'origin', env: ctx.env, ...auth, logger: ctx.logger }, `published ${r.model} ${r.version}`, r.commit)
    : undefined;
  if (opts.json) {
    printJson(ctx, { ok: true, ...r, objects: r.objects.map(({ oid, size }) => ({ oid, size })), pushed });
    return EXIT.ok;
  }
  ctx.out(`Published ${r.model} ${r.version} (${r.files.length} file${r.files.length === 1 ? '' : 's'}) in commit ${r.commit.slice(0, 12)} on ${r.branch}`);
  for (const f of r.files) ctx.out(`  ${f.name}  ${f.size} bytes  sha256:${f.sha256}${f.storage === 'blob' ? '  (plain blob)' : ''}`);
  if (r.promoted) ctx.out(r.previous ? `Promoted: ${r.model} ${r.previous} -> ${r.version}` : `Promoted: ${r.model} is now at ${r.version}`);
  else if (opts.promote !== false) ctx.out(`Not promoted: ${r.model} has a rollout policy; start the staged rollout with: modelsync promote ${r.model} ${r.version}`);
  else ctx.out(`Not promoted; make it current with: modelsync promote ${r.model} ${r.version}`);
  if (pushed) ctx.out(`Pushed ${pushed.branch} to ${pushed.remote} (${pushed.uploaded} LFS object${pushed.uploaded === 1 ? '' : 's'} uploaded, ${pushed.skipped} already there)`);
  else ctx.out('Not pushed; sites see it once you push (git push, or modelsync publish --push next time).');
  return EXIT.ok;
}
