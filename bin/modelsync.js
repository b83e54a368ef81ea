#!/usr/bin/env node
// The CLI runs from TypeScript sources through tsx, so what `npx modelsync`
// executes is always exactly what is in src/ (no stale build to forget).
import { register } from 'tsx/esm/api';

register();
await import('../src/cli.ts');
