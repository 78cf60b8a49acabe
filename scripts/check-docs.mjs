// Checks the site `pnpm run docs` built: every guide page of typedoc.json's projectDocuments and
// every package's API page is there, the guide pages load the KaTeX script, and the bench charts
// they embed were copied. Run after `pnpm run docs`; exits 1 with the list of what is missing.
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const site = join(root, 'docs-site');
const config = JSON.parse(readFileSync(join(root, 'typedoc.json'), 'utf8'));
const problems = [];
const read = (path) => readFileSync(path, 'utf8');

if (!existsSync(join(site, 'index.html'))) {
  console.error(`check-docs: ${site}/index.html is missing; run \`pnpm run docs\` first`);
  process.exit(1);
}

// Guide pages: typedoc names each page's file after its front-matter title.
const documents = existsSync(join(site, 'documents')) ? readdirSync(join(site, 'documents')) : [];
let charts = 0;
for (const page of config.projectDocuments ?? []) {
  const source = read(join(root, page));
  const title = /^---\n(?:.*\n)*?title:\s*(.+)\n(?:.*\n)*?---\n/.exec(source)?.[1]?.trim();
  if (!title) {
    problems.push(`${page}: no front-matter title`);
    continue;
  }
  const file = `${title.replace(/[^\p{L}\p{N}_.()-]/gu, '_')}.html`;
  if (!documents.includes(file)) {
    problems.push(`${page}: documents/${file} is missing (site has: ${documents.join(', ') || 'none'})`);
    continue;
  }
  const html = read(join(site, 'documents', file));
  const h1 = /^# (.+)$/m.exec(source)?.[1];
  if (h1 && !html.includes(h1.replace(/`/g, '').split(':')[0]))
    problems.push(`${page}: heading "${h1}" not in the page`);
  if (!html.includes('assets/custom.js'))
    problems.push(`${page}: the page does not load assets/custom.js (KaTeX)`);
  if (source.includes('```math') && !html.includes('<code class="math">'))
    problems.push(`${page}: math blocks were not rendered as <code class="math"> for the KaTeX script`);
  for (const [, image] of source.matchAll(/!\[[^\]]*\]\(([^)]+\.svg)\)/g)) {
    const name = image.split('/').pop();
    charts++;
    if (!existsSync(join(site, 'media', name)))
      problems.push(`${page}: chart ${image} was not copied to media/`);
  }
}
if (!existsSync(join(site, 'assets', 'custom.js')))
  problems.push('assets/custom.js (the KaTeX script) is missing');

// API pages: one module page per package entry point, named after the package.
for (const entry of config.entryPoints) {
  const { name } = JSON.parse(read(join(root, entry, 'package.json')));
  const file = join(site, 'modules', `${name.replace(/[^\p{L}\p{N}_.-]/gu, '_')}.html`);
  if (!existsSync(file)) problems.push(`${name}: API page ${file} is missing`);
  else if (!read(file).includes('Documentation'))
    problems.push(`${name}: API page lacks the README's Documentation section`);
}

if (problems.length > 0) {
  console.error(`check-docs: ${problems.length} problem(s) in ${site}:\n- ${problems.join('\n- ')}`);
  process.exit(1);
}
console.log(
  `check-docs: ${config.projectDocuments.length} guide pages, ${config.entryPoints.length} package API pages, ${charts} charts in ${site}`,
);
