/**
 * The reconcile loop's public face: one pass (`reconcile`) for the CLI and
 * the agent, its result type, and the hooks the agent plugs in.
 */
export { reconcile, type ReconcileOptions, type PassProgress } from './pass.ts';
export type { ReconcileResult, ModelOutcome, PassError, PassStatus } from './result.ts';
export { EXIT_CODES } from './result.ts';
export type { ActivationHooks, ActivatedModel, UnhealthyService } from './hooks.ts';
export type { FetcherFactory, FetcherRequest } from './fetcher.ts';
export { plan, planModel, type Plan, type ModelPlan } from './plan.ts';
