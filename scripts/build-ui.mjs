// Bundles the dashboard (apps/ui) into dist/ui with esbuild: one script and one stylesheet named
// by their content's hash (the API caches them for good), and index.html that loads them (never
// cached). No inline script or style: the Content-Security-Policy forbids them. Part of
// `npm run build`; prints the script's size gzipped, which must stay under 250 KB.
import { build } from 'esbuild';
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const source = join(root, 'apps/ui/src');
const out = join(root, 'dist/ui');
const MAX_GZIP_BYTES = 250 * 1024;

rmSync(out, { recursive: true, force: true });
mkdirSync(join(out, 'assets'), { recursive: true });
const result = await build({
  entryPoints: { app: join(source, 'main.ts'), style: join(source, 'app.css') },
  bundle: true,
  minify: true,
  format: 'iife',
  target: ['es2022'],
  outdir: join(out, 'assets'),
  entryNames: '[name]-[hash]',
  metafile: true,
  logLevel: 'warning',
});
const outputs = Object.keys(result.metafile.outputs);
const js = outputs.find((path) => path.endsWith('.js'));
const css = outputs.find((path) => path.endsWith('.css'));
const html = readFileSync(join(source, 'index.html'), 'utf8')
  .replace('{{js}}', `/ui/assets/${basename(js)}`)
  .replace('{{css}}', `/ui/assets/${basename(css)}`);
writeFileSync(join(out, 'index.html'), html);
const gzipped = gzipSync(readFileSync(join(root, js))).length;
console.log(`dashboard: ${basename(js)} ${(gzipped / 1024).toFixed(1)} KB gzipped (limit 250 KB)`);
if (gzipped > MAX_GZIP_BYTES) {
  console.error('dashboard: the script is over 250 KB gzipped');
  process.exit(1);
}
