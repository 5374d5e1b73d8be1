#!/usr/bin/env node
// The `tessera` command: registers tsx's loader in this process and runs the TypeScript CLI, so
// signals (Ctrl-C) and the exit status are the CLI's own with no child process in between.
import { register } from 'tsx/esm/api';

register();
await import('../src/client/cli.ts');
