// PLACEHOLDER: replaced by the real command; must not survive to a landing.
import { ModelsyncError } from '../errors.ts';
import type { CommandContext } from './context.ts';
export async function rollbackCommand(_opts: Record<string, unknown>, _ctx: CommandContext): Promise<number> { throw new ModelsyncError('NotImplemented', 'rollback is not implemented yet'); }
