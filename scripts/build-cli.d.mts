// Types of build-cli.mjs for the TypeScript that imports it (src/launcher/server-bundle.ts).
import type { BuildOptions } from 'esbuild';

export declare const NODE_BUNDLE: BuildOptions;
export declare const CLI_BUILD: BuildOptions;
