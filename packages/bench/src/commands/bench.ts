/** `webattn bench <suite>`: measured tables, ratios against the baseline, ceilings, JSON and SVG. */
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import type { Dtype, Gpu, Tier } from '@webattn/core';
import { adapterLine, isCpuAdapter } from '../adapter.js';
import { measureCeilings } from '../bench/probes.js';
import { runTables } from '../bench/runner.js';
import { BENCHED_SUITES, suiteTables } from '../bench/suites.js';
import { reportSvg } from '../bench/svg.js';
import { hasFewerRuns, reportHeaderMarkdown, tableSectionMarkdown } from '../bench/table.js';
import { mergeBaselines, readBaselines } from '../bench/torch.js';
import type { BenchReport } from '../bench/types.js';
import type { Suite } from '../verify/check.js';

/** Flags of `bench`, parsed. */
export interface BenchFlags {
  sizes?: number[];
  dtype?: Dtype;
  tier?: Tier;
  iters?: number;
  warmup?: number;
  json?: string;
  svg?: string;
  torch?: string;
  progress: boolean;
}

/** The warning every CPU-adapter run carries. */
export const CPU_BANNER =
  'CPU adapter: these times measure a software rasteriser on this machine and say nothing about GPU speed; sizes are scaled down.';

function writeCreatingDirectory(path: string, text: string): void {
  mkdirSync(dirname(path), { recursive: true });
  writeFileSync(path, text);
}

/** Runs `bench`, printing the heading and then each table as it is measured; returns the report. */
export async function benchCommand(
  gpu: Gpu,
  target: Suite | 'all',
  flags: BenchFlags,
  print: (text: string) => void,
  warn: (text: string) => void,
): Promise<BenchReport> {
  const cpu = isCpuAdapter(gpu.caps);
  if (cpu) warn(CPU_BANNER);
  if (flags.tier && !gpu.caps.tiers.includes(flags.tier)) {
    throw new Error(
      `--tier ${flags.tier}: this adapter cannot run it (it offers ${gpu.caps.tiers.join(', ')})`,
    );
  }
  const baselines = flags.torch ? readBaselines(flags.torch) : undefined;
  const suites = target === 'all' ? BENCHED_SUITES : [target];
  const specs = suites.flatMap((suite) =>
    suiteTables(gpu, suite, {
      cpu,
      ...(flags.sizes && { sizes: flags.sizes }),
      ...(flags.dtype && { dtype: flags.dtype }),
      ...(flags.tier && { tier: flags.tier }),
    }),
  );
  const iterations = flags.iters ?? (cpu ? 3 : 10);
  const ceilings = await measureCeilings(gpu, cpu);
  const reportOf = (tables: BenchReport['tables']): BenchReport => ({
    tool: 'webattn',
    date: new Date().toISOString(),
    adapter: adapterLine(gpu.caps),
    cpuAdapter: cpu,
    iterations,
    ceilings,
    tables,
    ...(baselines && { external: baselines.source }),
  });
  const header = reportOf([]);
  print(cpu ? `> ${CPU_BANNER}\n\n${reportHeaderMarkdown(header)}` : reportHeaderMarkdown(header));
  const writeJson = (report: BenchReport) => {
    if (flags.json) writeCreatingDirectory(flags.json, `${JSON.stringify(report, null, 2)}\n`);
  };
  const tables = await runTables(gpu, specs, {
    warmup: flags.warmup ?? (cpu ? 1 : 3),
    iters: iterations,
    progress: flags.progress,
    // A cell whose single run is slow (the row kernels at large n) gets fewer iterations, so the
    // whole table stays minutes, not hours; the report states the iterations of every cell.
    budgetMs: 20_000,
    onError: warn,
    // Each table is printed, and the JSON rewritten, as soon as it is finished, so a run cut short
    // keeps what it measured.
    onTable: (done) => {
      const table = done.at(-1)!;
      if (baselines) mergeBaselines([table], baselines);
      print(tableSectionMarkdown(table, header));
      writeJson(reportOf([...done]));
    },
  });
  const report = reportOf(tables);
  if (hasFewerRuns(report)) {
    print(
      `\nCells marked * had fewer than ${iterations} timed iterations: the slowest cells, cut to the time budget.\n`,
    );
  }
  writeJson(report);
  if (flags.svg) writeCreatingDirectory(flags.svg, await reportSvg(report));
  return report;
}
