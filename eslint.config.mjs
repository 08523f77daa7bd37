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
 * libs/client and libs/fdk are each published as a package of their own with no dependencies,
 * built from their src/ only (their tsconfig.build.json), so they import Node's `node:*` modules
 * and their own files, and nothing else: no `@kiln/*` alias (their own included: the published
 * build does not resolve aliases), no npm package, no root path. `../..` leaves libs/<package>
 * from libs/<package>/src/*.ts; neither has deeper folders today, where the check would be
 * stricter than needed.
 */
const PACKAGE_OUTWARD = (lib) => [
  {
    regex: '^(?!node:|\\.)',
    message: `libs/${lib} is a dependency-free package: it imports node:* modules and its own files only, nothing from the server.`,
  },
  {
    regex: '^(\\./)?\\.\\./\\.\\.(/|$)',
    message: `libs/${lib} imports nothing from outside libs/${lib}.`,
  },
];
const PACKAGES = ['client', 'fdk'];

/**
 * The environment is read in one place per program (STYLE.md, config validated once at start-up):
 * the server's libs/config, the client's libs/client/src/settings.ts and the FDK's
 * libs/fdk/src/env.ts. Tests, specs and the
 * benchmarks are harnesses that read the variables their runner sets (database URLs, fuzz runs),
 * so they may read it directly.
 */
const ENV_MESSAGE =
  'Read the environment through @kiln/config (server), libs/client/src/settings.ts (client) or libs/fdk/src/env.ts (FDK).';
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
      'libs/fdk/dist/**',
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
    files: [
      'libs/config/**/*.ts',
      'libs/client/src/settings.ts',
      'libs/fdk/src/env.ts',
      '**/*.spec.ts',
    ],
    rules: ENV_RULES_OFF,
  },
  {
    files: ['libs/**/*.ts'],
    rules: { '@typescript-eslint/no-restricted-imports': ['error', { patterns: [LIBS_TO_APPS] }] },
  },
  // Replace the libs/ patterns above (rule options do not merge); PACKAGE_OUTWARD covers them.
  ...PACKAGES.map((lib) => ({
    files: [`libs/${lib}/**/*.ts`],
    rules: {
      '@typescript-eslint/no-restricted-imports': ['error', { patterns: PACKAGE_OUTWARD(lib) }],
    },
  })),
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
