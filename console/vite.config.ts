// The web console's build: Preact's JSX through Vite's own transform (oxc), no plugin needed;
// output in ../dist/console, served by the coordinator at / (src/http/console-route.ts).
import { defineConfig } from 'vite';

export default defineConfig({
  root: new URL('.', import.meta.url).pathname,
  base: '/',
  logLevel: 'warn',
  oxc: { jsx: { runtime: 'automatic', importSource: 'preact' } },
  build: {
    outDir: '../dist/console',
    emptyOutDir: true,
    assetsDir: 'assets',
    // The CSP allows no inline script: no module-preload polyfill (every browser we serve has it).
    modulePreload: { polyfill: false },
    target: 'es2022',
    reportCompressedSize: false,
  },
});
