import js from '@eslint/js';
import globals from 'globals';
import tseslint from 'typescript-eslint';

export default tseslint.config(
  { ignores: ['dist/', 'node_modules/', '.cache/', 'test-results/', 'playwright-report/', 'coverage/'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  // Rules that need the types: among them, promises awaited or handed on, never dropped
  // (`void` marks a deliberate fire-and-forget) or passed where none is expected.
  ...tseslint.configs.recommendedTypeCheckedOnly.map((config) => ({ ...config, files: ['**/*.ts'] })),
  {
    files: ['**/*.ts'],
    // One program over every file (tsconfig.node.json includes them all): faster than one per tsconfig.
    languageOptions: { parserOptions: { project: './tsconfig.node.json', tsconfigRootDir: import.meta.dirname } },
    rules: {
      '@typescript-eslint/no-floating-promises': 'error',
      '@typescript-eslint/no-misused-promises': 'error',
      // An async function without await is the house's way to turn a throw into a rejection.
      '@typescript-eslint/require-await': 'off',
    },
  },
  {
    languageOptions: { globals: { ...globals.browser, ...globals.node } },
    rules: {
      '@typescript-eslint/no-explicit-any': 'error',
      '@typescript-eslint/no-non-null-assertion': 'error',
      '@typescript-eslint/consistent-type-imports': ['error', { fixStyle: 'inline-type-imports' }],
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      'no-console': 'off',
    },
  },
  {
    // The page takes only types from the worker: the worker's code runs in the worker, through the bridge.
    files: ['web/**/*.ts'],
    rules: {
      '@typescript-eslint/no-restricted-imports': [
        'error',
        {
          patterns: [
            {
              group: ['**/worker/**'],
              allowTypeImports: true,
              message: 'web/ imports only types from worker/; move a value both need to protocol/ or web/.',
            },
          ],
        },
      ],
    },
  },
  {
    // The server stands on its own: the browser's, the requester's and the model host's code, and
    // the harnesses that drive them all (testing/), reach it only from tests and from operator/.
    files: ['coordinator/**/*.ts'],
    ignores: ['**/*.test.ts'],
    rules: {
      '@typescript-eslint/no-restricted-imports': [
        'error',
        {
          patterns: [
            {
              group: ['**/worker/**', '**/requester/**', '**/modelhost/**', '**/testing/**'],
              message:
                'coordinator/ imports none of worker/, requester/, modelhost/ or testing/: move what both need to protocol/, or wire it in from operator/.',
            },
          ],
        },
      ],
    },
  },
  {
    files: ['**/*.test.ts', 'e2e/**/*.ts', 'bench/**/*.ts'],
    rules: {
      '@typescript-eslint/no-non-null-assertion': 'off',
      // Vitest's asymmetric matchers (`expect.any(Number)`, `expect.stringMatching(...)`) are typed `any`.
      '@typescript-eslint/no-unsafe-assignment': 'off',
    },
  },
);
