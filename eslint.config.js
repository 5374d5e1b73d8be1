// Lint rules that guard the house rules a reviewer would otherwise have to remember: functions a
// person can hold in their head, layers that only point down, and promises nobody forgets.
import js from '@eslint/js';
import prettier from 'eslint-config-prettier';
import tseslint from 'typescript-eslint';

export default tseslint.config(
  { ignores: ['node_modules/', 'dist/', 'data/', '.bench/', 'console/dist/'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    languageOptions: {
      parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname },
    },
    rules: {
      // A forgotten promise is an unhandled rejection in a server: it crashes or hides a failure.
      '@typescript-eslint/no-floating-promises': 'error',
      // A promise in a condition is always true: a forgotten await on an async metadata call.
      '@typescript-eslint/no-misused-promises': ['error', { checksConditionals: true, checksVoidReturn: false }],
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_', caughtErrors: 'none' }],
      '@typescript-eslint/consistent-type-imports': ['error', { disallowTypeAnnotations: false }],
      // Validators match control characters on purpose (names, tokens, multipart headers).
      'no-control-regex': 'off',
      eqeqeq: ['error', 'always', { null: 'ignore' }],
      'no-constant-condition': ['error', { checkLoops: false }],
    },
  },
  {
    files: ['src/**/*.ts', 'datanode/**/*.ts', 'console/src/**/*.{ts,tsx}'],
    rules: {
      'max-lines-per-function': ['error', { max: 80, skipBlankLines: true, skipComments: true, IIFEs: true }],
    },
  },
  {
    // Pothos field maps are declarative tables: one entry per field, read top to bottom.
    files: ['src/schema/**/*.ts'],
    rules: { 'max-lines-per-function': 'off' },
  },
  {
    files: ['src/schema/**/*.ts'],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          patterns: [
            {
              group: ['**/http/**', '../http', '../http/*'],
              message: 'The schema layer sits below HTTP: it must not import from src/http.',
            },
          ],
        },
      ],
    },
  },
  {
    files: ['src/metadata/**/*.ts', 'src/cluster/**/*.ts'],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          paths: [
            { name: 'graphql', message: 'Metadata and cluster layers throw plain coded errors (src/errors.ts); GraphQL is the edge.' },
          ],
          patterns: [{ group: ['graphql-yoga', '@pothos/*'], message: 'Metadata and cluster layers do not depend on the API framework.' }],
        },
      ],
    },
  },
  {
    // Tests and benchmarks read JSON answers whose shape the assertions themselves check.
    files: ['test/**/*.ts', 'bench/**/*.ts'],
    rules: { '@typescript-eslint/no-explicit-any': 'off' },
  },
  {
    files: ['**/*.js', '**/*.mjs'],
    ...tseslint.configs.disableTypeChecked,
    languageOptions: {
      parserOptions: { projectService: false },
      globals: { process: 'readonly', console: 'readonly', URL: 'readonly', setTimeout: 'readonly', fetch: 'readonly' },
    },
  },
  prettier,
);
