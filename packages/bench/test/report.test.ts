import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { nullGpu } from '@webattn/core/testing';
import { describe, expect, it } from 'vitest';
import { nsaTables } from '../src/bench/nsa-suite.js';
import { mergeBaselines, readBaselines } from '../src/bench/torch.js';
import {
  type BenchReport,
  type BenchTable,
  hostTimeMarkdown,
  reportMarkdown,
  reportSvg,
  throughputMarkdown,
  timingMarkdown,
} from '../src/index.js';

function table(): BenchTable {
  return {
    id: 'matmul',
    title: 'matmul',
    sizeLabel: 'n',
    columns: ['slow', 'fast'],
    rows: [
      {
        size: 1024,
        cells: {
          slow: { ms: 8, min: 7.5, max: 9, source: 'timestamp' },
          fast: { ms: 2, min: 2, max: 2.5, source: 'timestamp' },
        },
      },
      { size: 2048, cells: { slow: { ms: 64, min: 60, max: 70, source: 'timestamp' }, fast: undefined } },
    ],
    flops: { 1024: 2 * 1024 ** 3, 2048: 2 * 2048 ** 3 },
  };
}

describe('markdown tables', () => {
  it('show median (min–max) per column and the ratio to the first column', () => {
    const md = timingMarkdown(table());
    const lines = md.split('\n');
    expect(lines[0]).toBe('| n | slow ms | fast ms | slow / fast |');
    expect(lines[2]).toBe('| 1024 | 8.00 (7.50–9.00) | 2.00 (2.00–2.50) | 4.00x |');
    expect(lines[3]).toBe('| 2048 | 64.00 (60.00–70.00) | — | — |');
  });

  it('leave out ratios for a table of stages of one run', () => {
    const lines = timingMarkdown({ ...table(), stages: true }).split('\n');
    expect(lines[0]).toBe('| n | slow ms | fast ms |');
    expect(lines[2]).toBe('| 1024 | 8.00 (7.50–9.00) | 2.00 (2.00–2.50) |');
  });

  it('give TFLOPS and the share of the tensor-core ceiling', () => {
    const md = throughputMarkdown(table(), 100)!;
    // 2·1024³ flops in 2 ms = 1.07 TFLOPS (3 significant digits); the best column is 1.07 % of a 100 TFLOPS ceiling.
    expect(md.split('\n')[2]).toBe('| 1024 | 0.268 | 1.07 | 1.1 % |');
    expect(throughputMarkdown({ ...table(), flops: undefined } as BenchTable)).toBeUndefined();
  });

  it('give host times per call only for tables that ask for them, and a dash where a cell has none', () => {
    const t = table();
    t.rows[0]!.cells.slow!.hostMs = 0.75;
    t.rows[0]!.cells.fast!.hostMs = 0.0625;
    expect(hostTimeMarkdown(t)).toBeUndefined();
    const lines = hostTimeMarkdown({ ...t, hostTimes: true })!.split('\n');
    expect(lines[2]).toBe('| n | slow host ms | fast host ms |');
    expect(lines[4]).toBe('| 1024 | 0.750 | 0.063 |');
    expect(lines[5]).toBe('| 2048 | — | — |');
    const report: BenchReport = {
      tool: 'webattn',
      date: '2026-12-02T00:00:00.000Z',
      adapter: 'test adapter',
      cpuAdapter: false,
      iterations: 3,
      ceilings: {},
      tables: [{ ...t, hostTimes: true }],
    };
    expect(reportMarkdown(report)).toContain('| 1024 | 0.750 | 0.063 |');
  });
});

describe('PyTorch baselines', () => {
  const dir = mkdtempSync(join(tmpdir(), 'webattn-torch-'));

  it('merge as extra columns where table ids and sizes match', () => {
    const path = join(dir, 'torch.json');
    writeFileSync(
      path,
      JSON.stringify({
        source: 'PyTorch test',
        tables: { matmul: { 'torch f16': { '1024': 0.5 } }, other: { x: { '1': 1 } } },
      }),
    );
    const t = table();
    mergeBaselines([t], readBaselines(path));
    expect(t.columns).toEqual(['slow', 'fast', 'torch f16']);
    expect(t.rows[0]!.cells['torch f16']).toEqual({ ms: 0.5, source: 'external' });
    expect(t.rows[1]!.cells['torch f16']).toBeUndefined();
  });

  it('merge into a table from the table it names as measuring the same problem', () => {
    const path = join(dir, 'alias.json');
    writeFileSync(
      path,
      JSON.stringify({ source: 'PyTorch test', tables: { 'flash-fwd': { FA2: { '1024': 0.25 } } } }),
    );
    // NSA's forward table takes PyTorch's dense attention at the same shape from flash-fwd.
    const nsa = { ...table(), id: 'nsa-fwd', externalFrom: 'flash-fwd' };
    const own = { ...table(), id: 'nsa-fwd' };
    mergeBaselines([nsa, own], readBaselines(path));
    expect(nsa.columns).toEqual(['slow', 'fast', 'FA2']);
    expect(nsa.rows[0]!.cells.FA2).toEqual({ ms: 0.25, source: 'external' });
    expect(own.columns).toEqual(['slow', 'fast']);
  });

  it("NSA's forward and backward tables take PyTorch's dense attention from the flash tables, at the GPU shape only", async () => {
    const gpu = await nullGpu();
    try {
      const from = (cpu: boolean) =>
        Object.fromEntries(nsaTables(gpu, { cpu }).map((t) => [t.id, t.externalFrom]));
      expect(from(false)).toMatchObject({ 'nsa-fwd': 'flash-fwd', 'nsa-bwd': 'flash-bwd' });
      expect(Object.values(from(true)).filter(Boolean)).toEqual([]);
    } finally {
      gpu.destroy();
    }
  });

  it('reject malformed files, naming the entry', () => {
    const path = join(dir, 'bad.json');
    writeFileSync(path, JSON.stringify({ tables: { matmul: { torch: { '1024': -1 } } } }));
    expect(() => readBaselines(path)).toThrow(/tables.matmul.torch.1024: expected a positive number of ms/);
    writeFileSync(path, '{');
    expect(() => readBaselines(path)).toThrow(/--torch .*cannot read JSON/);
  });
});

describe('report', () => {
  const report: BenchReport = {
    tool: 'webattn',
    date: '2026-11-22T00:00:00.000Z',
    adapter: 'test adapter',
    cpuAdapter: false,
    iterations: 3,
    ceilings: { tensorCoreTflops: 600, streamingGBps: 2900 },
    tables: [table()],
  };

  it('renders the ceilings and every table as markdown', () => {
    const md = reportMarkdown(report);
    expect(md).toContain('## webattn bench — test adapter');
    expect(md).toContain('tensor-core probe 600.0 TFLOPS, streaming probe 2900.0 GB/s');
    expect(md).toContain('### matmul');
  });

  it('draws an SVG line chart with a series per implementation', async () => {
    const svg = await reportSvg(report);
    expect(svg.startsWith('<svg')).toBe(true);
    expect(svg).toContain('slow');
    expect(svg).toContain('fast');
    expect(svg).toContain('ms (log)');
  });
});

describe('cells measured with fewer runs', () => {
  it('are marked, and the report says why', () => {
    const t = table();
    t.rows[0]!.cells.slow = { ms: 8, min: 7.5, max: 9, runs: 2, source: 'timestamp' };
    expect(timingMarkdown(t, 10).split('\n')[2]).toBe(
      '| 1024 | 8.00 (7.50–9.00)* | 2.00 (2.00–2.50) | 4.00x |',
    );
    const md = reportMarkdown({
      tool: 'webattn',
      date: 'd',
      adapter: 'a',
      cpuAdapter: false,
      iterations: 10,
      ceilings: {},
      tables: [t],
    });
    expect(md).toContain('(fewer for the slowest cells, marked *)');
  });
});
