// PLACEHOLDER: replaced by the real command; must not survive to a landing.
import { ModelsyncError } from '../errors.ts';
import type { CommandContext } from './context.ts';
export async function listCommand(_opts: Record<string, unknown>, _ctx: CommandContext): Promise<number> { throw new ModelsyncError('NotImplemented', 'list is not implemented yet'); }
export async function versionsCommand(_opts: Record<string, unknown>, _ctx: CommandContext): Promise<number> { throw new ModelsyncError('NotImplemented', 'list is not implemented yet'); }
