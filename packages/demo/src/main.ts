/**
 * The page: finds an adapter through navigator.gpu (core's createGpu), then on "Run" runs every op
 * of DEMO_OPS on the chosen tier and fills the table. The verdict element (`#verdict`, with
 * `data-status` idle, running, pass or fail) and each row's `data-op` / `data-status` are what the
 * end-to-end test reads; `window.webattnDemo` holds the same results as data.
 */
import { createGpu, type Gpu, TIERS, type Tier } from '@webattn/core';
import { DEMO_OPS } from './ops/index.js';
import { type OpResult, runOp } from './run.js';

/** What the page exposes for scripts and the end-to-end test. */
interface DemoState {
  status: 'idle' | 'running' | 'pass' | 'fail';
  adapter?: string;
  tiers?: readonly Tier[];
  results: OpResult[];
  error?: string;
}

declare global {
  interface Window {
    webattnDemo: DemoState;
  }
}

const state: DemoState = { status: 'idle', results: [] };
window.webattnDemo = state;

function element<T extends HTMLElement>(id: string): T {
  const found = document.getElementById(id);
  if (!found) throw new Error(`demo: no #${id} in the page`);
  return found as T;
}

const runButton = element<HTMLButtonElement>('run');
const tierSelect = element<HTMLSelectElement>('tier');
const verdict = element<HTMLOutputElement>('verdict');
const rows = element<HTMLTableElement>('results').tBodies[0]!;

function setVerdict(status: DemoState['status'], text: string): void {
  state.status = status;
  verdict.dataset.status = status;
  verdict.textContent = text;
}

function describeAdapter(gpu: Gpu): string {
  const a = gpu.caps.adapter;
  const name = [a.vendor, a.architecture, a.device].filter(Boolean).join(' / ') || 'unnamed adapter';
  return `${name}${a.description ? ` (${a.description})` : ''}${a.isFallbackAdapter ? ', fallback (software) adapter' : ''}`;
}

const gpuReady: Promise<Gpu> = createGpu().then(
  (gpu) => {
    const adapter = element('adapter');
    state.adapter = describeAdapter(gpu);
    state.tiers = gpu.caps.tiers;
    element('adapter-name').textContent = state.adapter;
    element('adapter-tiers').textContent = gpu.caps.tiers.join(', ');
    element('adapter-features').textContent = [...gpu.caps.features].sort().join(', ') || 'none';
    adapter.dataset.status = 'ready';
    for (const tier of TIERS.filter((t) => gpu.caps.tiers.includes(t))) {
      tierSelect.add(new Option(tier, tier));
    }
    tierSelect.disabled = false;
    runButton.disabled = false;
    return gpu;
  },
  (error: unknown) => {
    const message = error instanceof Error ? error.message : String(error);
    state.error = message;
    element('adapter-name').textContent = `no WebGPU adapter: ${message}`;
    element('adapter').dataset.status = 'fail';
    // Run stays enabled, so that a test clicking it gets a FAIL rather than a timeout.
    runButton.disabled = false;
    throw error;
  },
);

function cell(row: HTMLTableRowElement, text: string, className?: string): HTMLTableCellElement {
  const td = row.insertCell();
  td.textContent = text;
  if (className) td.className = className;
  return td;
}

const exp = (x: number) => (Number.isFinite(x) ? x.toExponential(2) : String(x));
const ms = (x: number) => (Number.isFinite(x) ? x.toFixed(x < 10 ? 2 : 1) : '–');

/** Fills a row: the worst output's errors (each output's on hover), times, verdict. */
function fillRow(row: HTMLTableRowElement, r: OpResult): void {
  row.replaceChildren();
  row.dataset.status = r.ok ? 'pass' : 'fail';
  cell(row, r.label);
  cell(row, r.shape, 'shape');
  cell(row, r.tier);
  const worst = (key: 'maxAbs' | 'rmsRel') =>
    r.outputs.reduce(
      (w, o) =>
        o.comparison[key] / o.comparison.tolerance[key] > w.ratio
          ? { ratio: o.comparison[key] / o.comparison.tolerance[key], o }
          : w,
      {
        ratio: Number.NEGATIVE_INFINITY,
        o: r.outputs[0],
      },
    ).o;
  const detail = r.outputs
    .map((o) => `${o.output}: max ${exp(o.comparison.maxAbs)}, rms rel ${exp(o.comparison.rmsRel)}`)
    .join('\n');
  const maxAbs = worst('maxAbs');
  const rmsRel = worst('rmsRel');
  cell(
    row,
    maxAbs ? `${exp(maxAbs.comparison.maxAbs)} (${exp(maxAbs.comparison.tolerance.maxAbs)})` : '–',
    'num',
  ).title = detail;
  cell(
    row,
    rmsRel ? `${exp(rmsRel.comparison.rmsRel)} (${exp(rmsRel.comparison.tolerance.rmsRel)})` : '–',
    'num',
  ).title = detail;
  cell(row, ms(r.firstMs), 'num');
  cell(row, ms(r.ms), 'num');
  const result = cell(row, r.ok ? 'PASS' : 'FAIL', 'verdict');
  const problems = [
    r.error,
    ...r.outputs.filter((o) => !o.comparison.ok).map((o) => `${o.output} out of tolerance`),
    r.leakedBuffers ? `${r.leakedBuffers} GPU buffer(s) leaked` : undefined,
  ].filter(Boolean);
  if (problems.length) {
    const why = document.createElement('div');
    why.className = 'error';
    why.textContent = problems.join('\n');
    result.append(why);
  }
}

async function runAll(): Promise<void> {
  runButton.disabled = true;
  tierSelect.disabled = true;
  setVerdict('running', 'running…');
  state.results = [];
  rows.replaceChildren();
  try {
    const gpu = await gpuReady;
    const tier = tierSelect.value === 'auto' ? gpu.caps.tiers.at(-1)! : (tierSelect.value as Tier);
    const pending = DEMO_OPS.map((op) => {
      const row = rows.insertRow();
      row.dataset.op = op.id;
      row.dataset.status = 'pending';
      cell(row, op.label);
      cell(row, op.shape, 'shape');
      cell(row, tier);
      return row;
    });
    for (const [i, op] of DEMO_OPS.entries()) {
      pending[i]!.dataset.status = 'running';
      const result = await runOp(gpu, op, tier);
      state.results.push(result);
      fillRow(pending[i]!, result);
    }
    const failed = state.results.filter((r) => !r.ok).length;
    setVerdict(
      failed ? 'fail' : 'pass',
      failed ? `FAIL: ${failed} of ${DEMO_OPS.length} ops` : `PASS: all ${DEMO_OPS.length} ops`,
    );
  } catch (error) {
    state.error = error instanceof Error ? error.message : String(error);
    setVerdict('fail', `FAIL: ${state.error}`);
  } finally {
    runButton.disabled = false;
    tierSelect.disabled = state.tiers === undefined;
  }
}

runButton.addEventListener('click', () => void runAll());
