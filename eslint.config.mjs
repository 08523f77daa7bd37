// Type-aware lint: a forgotten `await` in a worker loses tasks silently, so floating promises are errors.
import js from '@eslint/js';
import tseslint from 'typescript-eslint';
import prettier from 'eslint-config-prettier';

// Architecture boundaries. Import patterns match the import's text, not the file it resolves to,
// so each boundary names the three ways tsconfig.json lets a file reach another: an `@kiln/*`
// alias, a relative path, and a path from the repository root (its baseUrl is "./").
const APPS = ['api', 'cli', 'scheduler', 'worker'];

/** libs/ are shared by the apps and never depend on one (there is no `@kiln/<app>` alias today). */
const LIBS_TO_APPS = {
  regex: `^(@kiln/(${APPS.join('|')})|(\\.\\.?/)+apps|apps)(/|$)`,
  message: 'libs/ never import from apps/: move the shared piece into a lib.',
};

/**
 * libs/client is published as a package of its own with no dependencies, built from its src/ only
 * (libs/client/tsconfig.build.json), so it imports Node's `node:*` modules and its own files, and
 * nothing else: no `@kiln/*` alias (its own included: the published build does not resolve
 * aliases), no npm package, no root path. `../..` leaves libs/client from libs/client/src/*.ts;
 * the client has no deeper folders today, where the check would be stricter than needed.
 */
const CLIENT_OUTWARD = [
  {
    regex: '^(?!node:|\\.)',
    message:
      'libs/client is a dependency-free package: it imports node:* modules and its own files only, nothing from the server.',
  },
  {
    regex: '^(\\./)?\\.\\./\\.\\.(/|$)',
    message: 'libs/client imports nothing from outside libs/client.',
  },
];

/**
 * The environment is read in one place per program (STYLE.md, config validated once at start-up):
 * the server's libs/config and the client's libs/client/src/settings.ts. Tests, specs and the
 * benchmarks are harnesses that read the variables their runner sets (database URLs, fuzz runs),
 * so they may read it directly.
 */
const ENV_MESSAGE =
  'Read the environment through @kiln/config (server) or libs/client/src/settings.ts (client).';
const ENV_RULES = {
  'no-restricted-properties': [
    'error',
    { object: 'process', property: 'env', message: ENV_MESSAGE },
  ],
  'no-restricted-syntax': [
    'error',
    {
      selector:
        "ImportDeclaration[source.value=/^(node:)?process$/] > ImportSpecifier[imported.name='env']",
      message: ENV_MESSAGE,
    },
  ],
};
const ENV_RULES_OFF = Object.fromEntries(Object.keys(ENV_RULES).map((rule) => [rule, 'off']));

export default tseslint.config(
  {
    ignores: [
      'dist/**',
      'libs/client/dist/**',
      'node_modules/**',
      '.kiln/**',
      'coverage/**',
      'docker/**',
      '*.mjs',
      '*.js',
      'jest.config.js',
      'scripts/**',
    ],
  },
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
      '@typescript-eslint/no-unused-vars': [
        'error',
        { argsIgnorePattern: '^_', varsIgnorePattern: '^_' },
      ],
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
  { files: ['apps/**/*.ts', 'libs/**/*.ts', 'migrations/**/*.ts'], rules: ENV_RULES },
  {
    files: ['libs/config/**/*.ts', 'libs/client/src/settings.ts', '**/*.spec.ts'],
    rules: ENV_RULES_OFF,
  },
  {
    files: ['libs/**/*.ts'],
    rules: { '@typescript-eslint/no-restricted-imports': ['error', { patterns: [LIBS_TO_APPS] }] },
  },
  {
    // Replaces the libs/ patterns above (rule options do not merge); CLIENT_OUTWARD covers them.
    files: ['libs/client/**/*.ts'],
    rules: { '@typescript-eslint/no-restricted-imports': ['error', { patterns: CLIENT_OUTWARD }] },
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
