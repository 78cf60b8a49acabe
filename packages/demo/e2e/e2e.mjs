// End-to-end test of the demo page in a real browser: serves the built page (vite preview) on
// localhost, drives Debian's chromium headless through playwright-core with WebGPU on (SwiftShader on
// a machine without a GPU), clicks Run, waits for the verdict and requires every op to have passed.
// A full-page screenshot goes to out/demo/ at the repository root (ignored; CI keeps it as an artifact).
// Build first: `pnpm demo:e2e` at the root builds the packages and the page, then runs this.
// Environment: CHROMIUM (the browser, default /usr/bin/chromium), DEMO_TIMEOUT_S (per run, default 150),
// DEMO_URL (a page already served, instead of the built one).
import { existsSync, mkdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';
import { preview } from 'vite';

const demoDir = fileURLToPath(new URL('..', import.meta.url));
const outDir = fileURLToPath(new URL('../../../out/demo/', import.meta.url));
const executablePath = process.env.CHROMIUM ?? '/usr/bin/chromium';
const timeoutMs = Number(process.env.DEMO_TIMEOUT_S ?? 150) * 1000;

/**
 * WebGPU in headless chromium: `--enable-unsafe-webgpu` is enough for Debian's build, which falls back
 * to its bundled SwiftShader Vulkan driver when there is no GPU. The rest keeps the browser off the
 * network: playwright-core already passes --disable-background-networking, --disable-component-update,
 * --disable-default-apps, --no-first-run, --no-default-browser-check, --metrics-recording-only and a
 * --disable-features list that stops the startup fetches (network time, optimization hints, search
 * preconnects, account checks); a second --disable-features here would replace that list, since
 * chromium reads only the last one. The flags below add sync, domain reliability and phishing checks.
 * Chromium still starts an update check (update.googleapis.com) and an account check
 * (accounts.google.com) that these flags do not stop: the host resolver rules make every name but
 * the local server's fail to resolve, so that those requests, and anything else chromium tries, never
 * leave the machine (checked with --log-net-log: no DNS query, no TCP connection but to 127.0.0.1;
 * the one UDP connect, chromium's IPv6 reachability probe, sends no packet).
 */
const ARGS = [
  '--enable-unsafe-webgpu',
  '--no-first-run',
  '--no-default-browser-check',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-default-apps',
  '--disable-sync',
  '--disable-domain-reliability',
  '--disable-client-side-phishing-detection',
  '--metrics-recording-only',
  '--no-pings',
  '--disable-dev-shm-usage',
  '--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1',
];

/** The ops the page must report, by their `data-op` ids. */
const EXPECTED_OPS = ['flash', 'nsa', 'mla', 'lightning', 'masked'];

const start = performance.now();
const seconds = () => ((performance.now() - start) / 1000).toFixed(1);

if (!existsSync(executablePath)) {
  console.error(
    `demo e2e: no browser at ${executablePath} (Debian: apt-get install chromium, or bash scripts/setup.sh)`,
  );
  process.exit(1);
}
// DEMO_URL tests a page that is already served (the dev server of `pnpm demo`, say) instead.
let server;
let url = process.env.DEMO_URL;
if (!url) {
  if (!existsSync(`${demoDir}/dist/index.html`)) {
    console.error(
      'demo e2e: the page is not built; run `pnpm demo:e2e` at the root, or build @webattn/demo first',
    );
    process.exit(1);
  }
  server = await preview({
    root: demoDir,
    logLevel: 'warn',
    preview: { host: '127.0.0.1', port: 0, strictPort: false, open: false },
  });
  url = server.resolvedUrls?.local[0];
  if (!url) throw new Error('demo e2e: vite preview reported no local URL');
}
const origin = new URL(url).origin;

const browser = await chromium.launch({ executablePath, headless: true, args: ARGS });
let failed = true;
try {
  const context = await browser.newContext({ viewport: { width: 1400, height: 900 } });
  // Nothing but the local server may be reached from the page.
  await context.route('**/*', (route) =>
    route.request().url().startsWith(origin) ? route.continue() : route.abort('blockedbyclient'),
  );
  const page = await context.newPage();
  page.on('console', (message) => {
    if (message.type() === 'error' || message.type() === 'warning') {
      console.log(`page ${message.type()}: ${message.text()}`);
    }
  });
  page.on('pageerror', (error) => console.log(`page error: ${error.message}`));

  console.log(`demo e2e: ${url} in ${executablePath}`);
  await page.goto(url);
  // Run is enabled once createGpu has found an adapter (or failed to: then the run reports FAIL).
  await page.locator('#run:enabled').waitFor({ timeout: 60_000 });
  console.log(`adapter: ${await page.locator('#adapter-name').textContent()} (${seconds()} s)`);
  console.log(`tiers: ${await page.locator('#adapter-tiers').textContent()}`);
  mkdirSync(outDir, { recursive: true });
  const problems = [];

  /** Runs every op on the selected tier; adds what failed to `problems`; saves a screenshot. */
  async function runOnce(tier, screenshot) {
    await page.locator('#tier').selectOption(tier);
    await page.locator('#run').click();
    await page
      .locator('#verdict[data-status="pass"], #verdict[data-status="fail"]')
      .waitFor({ timeout: timeoutMs });
    await page.screenshot({ path: screenshot, fullPage: true });
    const demo = await page.evaluate(() => window.webattnDemo);
    const rows = await page
      .locator('#results tbody tr')
      .evaluateAll((trs) => trs.map((tr) => ({ op: tr.dataset.op, status: tr.dataset.status })));
    for (const r of demo.results) {
      const outputs = r.outputs
        .map(
          (o) =>
            `${o.output} max ${o.comparison.maxAbs.toExponential(2)} rms ${o.comparison.rmsRel.toExponential(2)}`,
        )
        .join(', ');
      console.log(
        `${r.ok ? 'PASS' : 'FAIL'} ${r.label} [${r.tier}] ${r.shape}: ${outputs || r.error}; first ${r.firstMs.toFixed(1)} ms, time ${r.ms.toFixed(1)} ms${r.leakedBuffers ? `, ${r.leakedBuffers} buffers leaked` : ''}`,
      );
    }
    const label = `tier ${tier}`;
    if (demo.status !== 'pass')
      problems.push(`${label}: verdict ${demo.status}${demo.error ? `: ${demo.error}` : ''}`);
    for (const id of EXPECTED_OPS) {
      const row = rows.find((r) => r.op === id);
      const result = demo.results.find((r) => r.id === id);
      if (row?.status !== 'pass' || !result?.ok) problems.push(`${label}: ${id} ${row?.status ?? 'missing'}`);
    }
    console.log(`verdict (${label}): ${await page.locator('#verdict').textContent()} (${seconds()} s)`);
    console.log(`screenshot: ${screenshot}`);
    return demo.results[0]?.tier;
  }

  // The default (the fastest tier), then every other tier the adapter offers, chosen in the page.
  const fastest = await runOnce('auto', `${outDir}demo.png`);
  const tiers = await page.locator('#tier option').evaluateAll((options) => options.map((o) => o.value));
  for (const tier of tiers.filter((t) => t !== 'auto' && t !== fastest)) {
    await runOnce(tier, `${outDir}demo-${tier}.png`);
  }
  if (problems.length) console.error(`demo e2e: FAILED: ${problems.join('; ')}`);
  failed = problems.length > 0;
} finally {
  await browser.close();
  await server?.close();
}
console.log(`demo e2e: ${failed ? 'failed' : 'passed'} in ${seconds()} s`);
process.exit(failed ? 1 : 0);
