/**
 * Runs one reconcile pass in its own process and kills itself with SIGKILL
 * (no cleanup, no finally blocks: a real crash) when the pass reaches the
 * barrier point named in argv. With `record`, it writes every point reached.
 *
 *   node --import tsx crash-child.ts '{"registry":…,"store":…,"crashAt":"switch:face:current"}'
 */
import { appendFileSync } from 'node:fs';
import { reconcile } from '../../src/reconcile/index.ts';
import { localFetcherFactory } from '../reconcile/helpers/local-fetcher.ts';

const args = JSON.parse(process.argv[2]!) as { registry: string; store: string; site: string; crashAt?: string; record?: string; hooks?: boolean };
const result = await reconcile({
  site: args.site,
  registry: args.registry,
  store: args.store,
  fetcher: localFetcherFactory(),
  // As the agent: services that would be restarted and health-checked after the switch.
  hooks: args.hooks ? { afterSwitch: async () => ({ unhealthy: [] }), afterRollback: async () => {} } : undefined,
  barrier: (point) => {
    if (args.record) appendFileSync(args.record, `${point}\n`);
    if (point === args.crashAt) process.kill(process.pid, 'SIGKILL');
  },
});
process.stdout.write(JSON.stringify({ status: result.status, errors: result.errors }));
