// Type-aware lint: a forgotten `await` in a worker loses tasks silently, so floating promises are errors.
import js from '@eslint/js';
import tseslint from 'typescript-eslint';
import prettier from 'eslint-config-prettier';

export default tseslint.config(
  { ignores: ['dist/**', 'libs/client/dist/**', 'node_modules/**', '.kiln/**', 'coverage/**', 'docker/**', '*.mjs', '*.js', 'jest.config.js', 'scripts/**'] },
  js.configs.recommended,
  ...tseslint.configs.recommendedTypeChecked,
  {
    languageOptions: {
      parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname },
    },
    rules: {
      '@typescript-eslint/no-floating-promises': 'error',
      '@typescript-eslint/no-misused-promises': 'error',
      '@typescript-eslint/switch-exhaustiveness-check': 'error',
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      '@typescript-eslint/require-await': 'off',
      // Always ===: the code never relies on `== null` matching both null and undefined.
      eqeqeq: ['error', 'always'],
    },
  },
  {
    files: ['**/*.spec.ts', 'test/**/*.ts', 'bench/**/*.ts'],
    rules: {
      '@typescript-eslint/no-unsafe-assignment': 'off',
      '@typescript-eslint/no-unsafe-member-access': 'off',
      '@typescript-eslint/no-unsafe-call': 'off',
      '@typescript-eslint/no-unsafe-argument': 'off',
      '@typescript-eslint/no-unsafe-return': 'off',
      '@typescript-eslint/no-explicit-any': 'off',
    },
  },
  prettier,
  {
    // After `prettier`, which turns `curly` off because Prettier may move a body onto its own line.
    // `multi-line`, not `all`: the code's ~500 one-line guards (`if (!x) return null;`) stay as
    // they are, and braces are required as soon as a body does not end on the line of its `if`,
    // which is where a second statement indented under it would silently run unconditionally.
    // When Prettier wraps a guard that outgrew its line, this asks for the braces.
    rules: { curly: ['error', 'multi-line'] },
  },
);
