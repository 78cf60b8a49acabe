/** Measures every implementation of every table at every size, with a progress bar on stderr. */
import { type Gpu, type Measurement, measure, medianOfSorted } from '@webattn/core';
import { Presets, SingleBar } from 'cli-progress';
import type { BenchTable, Cell, TableSpec } from './types.js';

/** How to measure. */
export interface RunOptions {
  warmup: number;
  iters: number;
  /** Show a progress bar (on a terminal). */
  progress: boolean;
  /** Time budget per cell in ms: slow cells get fewer iterations (see `measure`). */
  budgetMs?: number;
  /** Called when an implementation fails at a size; the cell stays empty. */
  onError?: (message: string) => void;
  /** Called with the tables measured so far each time one is complete (for partial reports). */
  onTable?: (tables: readonly BenchTable[]) => void;
}

/** Runs the specs and returns the measured tables. */
export async function runTables(
  gpu: Gpu,
  specs: readonly TableSpec[],
  options: RunOptions,
): Promise<BenchTable[]> {
  const total = specs.reduce((sum, s) => sum + s.sizes.length * s.implementations.length, 0);
  const bar = options.progress
    ? new SingleBar(
        { format: ' {bar} {value}/{total} {task}', stream: process.stderr, hideCursor: true },
        Presets.shades_classic,
      )
    : undefined;
  bar?.start(total, 0, { task: '' });
  let done = 0;
  const tables: BenchTable[] = [];
  try {
    for (const spec of specs) {
      if (spec.implementations.length === 0) continue;
      const table: BenchTable = {
        id: spec.id,
        title: spec.title,
        sizeLabel: spec.sizeLabel,
        columns: spec.implementations.map((i) => i.name),
        rows: [],
      };
      if (spec.flops) table.flops = Object.fromEntries(spec.sizes.map((s) => [s, spec.flops!(s)]));
      if (spec.bytes) table.bytes = Object.fromEntries(spec.sizes.map((s) => [s, spec.bytes!(s)]));
      if (spec.bytesLabel) table.bytesLabel = spec.bytesLabel;
      if (spec.stages) table.stages = true;
      if (spec.externalFrom) table.externalFrom = spec.externalFrom;
      if (spec.hostTimes) table.hostTimes = true;
      for (const size of spec.sizes) {
        const row: BenchTable['rows'][number] = { size, cells: {} };
        for (const impl of spec.implementations) {
          bar?.increment(0, { task: `${spec.id} ${impl.name} ${spec.sizeLabel}=${size}` });
          let prepared: Awaited<ReturnType<typeof impl.prepare>>;
          try {
            // Each cell starts from an empty pool: what earlier cells left there (other sizes, other
            // ops) would otherwise crowd out this cell's buffers, and its warm-up fills the pool again.
            gpu.pool.trim();
            prepared = await impl.prepare(gpu, size);
            if (prepared) {
              const m = await measure(gpu, prepared.run, {
                warmup: options.warmup,
                iters: options.iters,
                ...(options.budgetMs !== undefined && { budgetMs: options.budgetMs }),
              });
              const cell: Cell | undefined = impl.kernels
                ? stageCell(m, impl.kernels)
                : {
                    ms: m.median,
                    min: m.min,
                    max: m.max,
                    runs: m.samples.length,
                    source: m.source,
                    hostMs: m.hostMedian,
                  };
              if (cell) row.cells[impl.name] = cell;
            }
          } catch (error) {
            options.onError?.(
              `${spec.id} ${impl.name} at ${size}: ${error instanceof Error ? error.message : String(error)}`,
            );
          } finally {
            prepared?.dispose();
          }
          done++;
          bar?.increment(1);
        }
        table.rows.push(row);
      }
      // A stage none of whose kernels ran on this tier and shape (the fused state pass replaces two
      // others where tensor cores exist) is left out, rather than shown as taking no time.
      if (spec.stages) table.columns = table.columns.filter((c) => table.rows.some((r) => r.cells[c]));
      if (spec.notes) table.notes = spec.notes();
      tables.push(table);
      if (options.onTable) {
        // Whatever the caller prints goes on lines of its own, not into the progress bar's.
        bar?.stop();
        options.onTable(tables);
        bar?.start(total, done, { task: '' });
      }
    }
  } finally {
    bar?.stop();
  }
  return tables;
}

/**
 * A cell of one stage: per timed run, the summed time of the kernels `accept` takes; none when no
 * kernel of the stage ran.
 */
function stageCell(m: Measurement, accept: (label: string) => boolean): Cell | undefined {
  if (!m.kernels) throw new Error('no per-kernel timestamps on this adapter');
  if (!m.kernels.some((run) => Object.keys(run).some(accept))) return undefined;
  const totals = m.kernels
    .map((run) => Object.entries(run).reduce((sum, [label, ms]) => sum + (accept(label) ? ms : 0), 0))
    .sort((a, b) => a - b);
  return {
    ms: medianOfSorted(totals),
    min: totals[0]!,
    max: totals.at(-1)!,
    runs: totals.length,
    source: 'timestamp',
  };
}
