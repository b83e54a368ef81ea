/**
 * Repair of an active version the plan leaves alone: after a health rollback
 * (the site runs the previous version while the desired one is Degraded at
 * this commit) or in a conflict (a newer version switched to by hand), the
 * active version is not the desired one, so the planner's own repair (of the
 * desired version) never looks at it. Its damaged files (deleted or replaced
 * on the site) are relinked here from their verified objects, under the same
 * lock, so self-heal works in every state.
 */
import { buildVersion, versionIntact, type VersionFile } from '../store/index.ts';
import { loadValidated } from './load.ts';
import type { PassContext, Step } from './pass-context.ts';
import { asModelsyncError } from './result.ts';

export const repairActive: Step = async (ctx) => {
  const held = (ctx.plan?.models ?? []).filter((m) => m.active !== undefined && m.active !== m.desired && (m.action === 'none' || m.action === 'conflict'));
  for (const m of held) {
    const version = m.active!;
    try {
      const files = await activeFiles(ctx, m.model, version);
      if (!files || (await versionIntact(ctx.store.layout, m.model, version, files))) continue;
      const missing: string[] = [];
      for (const f of files) if (!(await ctx.store.objects.has(f))) missing.push(f.name);
      if (missing.length > 0) {
        ctx.warnings.push(`${m.model} ${version} (active) is damaged and ${missing.join(', ')} no longer has a verified object in the store; it is fetched again once ${version} is the desired version, or switch with --force`);
        continue;
      }
      await buildVersion(ctx.store.layout, m.model, version, files, ctx.barrier);
      ctx.logger.info({ model: m.model, version, state: m.reason }, 'restored damaged files of the active version from verified objects');
    } catch (err) {
      ctx.warnings.push(`cannot repair ${m.model} ${version}: ${asModelsyncError(err).message}`);
    }
  }
};

/** The files of a version the registry publishes at this commit (undefined: it no longer does). */
async function activeFiles(ctx: PassContext, model: string, version: string): Promise<VersionFile[] | undefined> {
  const manifest = (await loadValidated(ctx)).models.get(model)?.versions.get(version)?.manifest;
  return manifest?.files.map((f) => ({ name: f.name, oid: f.sha256, size: f.size }));
}
