/** Markdown rendering of bench results in the seed tables' shape: rows are sizes, columns are ms. */
import type { BenchReport, BenchTable, Cell } from './types.js';

const ms = (x: number) => (x >= 100 ? x.toFixed(1) : x >= 1 ? x.toFixed(2) : x.toFixed(3));

function timeCell(cell: Cell | undefined, iterations?: number): string {
  if (!cell) return '—';
  if (cell.min === undefined || cell.max === undefined) return ms(cell.ms);
  const fewer = iterations !== undefined && cell.runs !== undefined && cell.runs < iterations ? '*' : '';
  return `${ms(cell.ms)} (${ms(cell.min)}–${ms(cell.max)})${fewer}`;
}

/**
 * The timing table, then the ratio of each column to the baseline (the first column; none for a
 * table of stages), as markdown.
 * Cells measured with fewer than `iterations` runs are marked with `*`.
 */
export function timingMarkdown(table: BenchTable, iterations?: number): string {
  const [baseline, ...rest] = table.columns;
  const others = table.stages ? [] : rest;
  const header = [
    table.sizeLabel,
    ...table.columns.map((c) => `${c} ms`),
    ...others.map((c) => `${baseline} / ${c}`),
  ];
  const lines = [`| ${header.join(' | ')} |`, `|${header.map(() => ' ---: |').join('')}`];
  for (const row of table.rows) {
    const base = baseline === undefined ? undefined : row.cells[baseline];
    const ratios = others.map((c) => {
      const cell = row.cells[c];
      return base && cell ? `${(base.ms / cell.ms).toFixed(2)}x` : '—';
    });
    lines.push(
      `| ${[row.size, ...table.columns.map((c) => timeCell(row.cells[c], iterations)), ...ratios].join(' | ')} |`,
    );
  }
  return lines.join('\n');
}

/** TFLOPS per column, and the best column's share of the tensor-core ceiling, as markdown. */
export function throughputMarkdown(table: BenchTable, tensorCoreTflops?: number): string | undefined {
  const flops = table.flops;
  if (!flops) return undefined;
  const header = [table.sizeLabel, ...table.columns.map((c) => `${c} TFLOPS`)];
  if (tensorCoreTflops) header.push('best webattn % of tensor-core probe');
  const lines = [`| ${header.join(' | ')} |`, `|${header.map(() => ' ---: |').join('')}`];
  for (const row of table.rows) {
    const f = flops[row.size];
    const tflops = table.columns.map((c) => {
      const cell = row.cells[c];
      return f && cell ? f / (cell.ms * 1e-3) / 1e12 : undefined;
    });
    const cells = tflops.map((t) => (t === undefined ? '—' : t >= 10 ? t.toFixed(1) : t.toPrecision(3)));
    if (tensorCoreTflops) {
      // The share is of this adapter's WebGPU ceiling, so only columns measured here count.
      const measured = table.columns.map((c, i) =>
        row.cells[c]?.source === 'external' ? 0 : (tflops[i] ?? 0),
      );
      const best = Math.max(...measured);
      cells.push(best > 0 ? `${((100 * best) / tensorCoreTflops).toFixed(1)} %` : '—');
    }
    lines.push(`| ${[row.size, ...cells].join(' | ')} |`);
  }
  return lines.join('\n');
}

/** Effective GB/s per column (the table's bytes over each time), and the best one's share of the streaming probe. */
export function bandwidthMarkdown(table: BenchTable, streamingGBps?: number): string | undefined {
  const bytes = table.bytes;
  if (!bytes) return undefined;
  const header = [table.sizeLabel, ...table.columns.map((c) => `${c} GB/s`)];
  if (streamingGBps) header.push('best % of streaming probe');
  const lines = [
    `Effective bandwidth: ${table.bytesLabel ?? 'bytes'} / time.`,
    '',
    `| ${header.join(' | ')} |`,
    `|${header.map(() => ' ---: |').join('')}`,
  ];
  for (const row of table.rows) {
    const b = bytes[row.size];
    const rates = table.columns.map((c) => {
      const cell = row.cells[c];
      return b && cell && cell.source !== 'external' ? b / (cell.ms * 1e-3) / 1e9 : undefined;
    });
    const cells = rates.map((g) => (g === undefined ? '—' : g >= 10 ? g.toFixed(0) : g.toPrecision(3)));
    if (streamingGBps) {
      const top = Math.max(0, ...rates.map((g) => g ?? 0));
      cells.push(top > 0 ? `${((100 * top) / streamingGBps).toFixed(1)} %` : '—');
    }
    lines.push(`| ${[row.size, ...cells].join(' | ')} |`);
  }
  return lines.join('\n');
}

/**
 * Each column's host time per call (the median time the call took to return, recording its GPU
 * work), for tables that ask for it; undefined otherwise or where no cell has one.
 */
export function hostTimeMarkdown(table: BenchTable): string | undefined {
  if (!table.hostTimes) return undefined;
  const columns = table.columns.filter((c) => table.rows.some((r) => r.cells[c]?.hostMs !== undefined));
  if (columns.length === 0) return undefined;
  const header = [table.sizeLabel, ...columns.map((c) => `${c} host ms`)];
  const lines = [
    'Host time per call: how long the call took to return, recording its GPU work (JavaScript and the WebGPU implementation), apart from the GPU time above. Steps run back to back take the longer of the two.',
    '',
    `| ${header.join(' | ')} |`,
    `|${header.map(() => ' ---: |').join('')}`,
  ];
  for (const row of table.rows) {
    const cells = columns.map((c) => {
      const host = row.cells[c]?.hostMs;
      return host === undefined ? '—' : ms(host);
    });
    lines.push(`| ${[row.size, ...cells].join(' | ')} |`);
  }
  return lines.join('\n');
}

/** Whether any cell of the tables was measured with fewer runs than the report's iterations. */
export function hasFewerRuns(report: BenchReport): boolean {
  return report.tables.some((t) =>
    t.rows.some((r) =>
      Object.values(r.cells).some((c) => c?.runs !== undefined && c.runs < report.iterations),
    ),
  );
}

/** The report's heading: adapter, date, iterations and the ceilings measured in the run. */
export function reportHeaderMarkdown(report: BenchReport): string {
  const parts = [`## webattn bench — ${report.adapter}`, ''];
  parts.push(
    `${report.date}; median (min–max) of ${report.iterations} timed iterations after warm-up${hasFewerRuns(report) ? ' (fewer for the slowest cells, marked *)' : ''}.`,
  );
  const c = report.ceilings;
  const probes = [
    c.tensorCoreTflops ? `tensor-core probe ${c.tensorCoreTflops.toFixed(1)} TFLOPS` : undefined,
    c.streamingGBps ? `streaming probe ${c.streamingGBps.toFixed(1)} GB/s` : undefined,
  ].filter(Boolean);
  if (probes.length) parts.push(`Ceilings measured in this run: ${probes.join(', ')}.`);
  if (report.external) parts.push(`External columns: ${report.external}.`);
  return `${parts.join('\n')}\n`;
}

/**
 * One table of a report: its timings, then throughput or bandwidth where it has them, host times
 * where it asks for them, then its notes.
 */
export function tableSectionMarkdown(
  table: BenchTable,
  report: Pick<BenchReport, 'iterations' | 'ceilings'>,
): string {
  const c = report.ceilings;
  const parts = ['', `### ${table.title}`, '', timingMarkdown(table, report.iterations)];
  const throughput = throughputMarkdown(table, c.tensorCoreTflops);
  if (throughput) parts.push('', throughput);
  const bandwidth = bandwidthMarkdown(table, c.streamingGBps);
  if (bandwidth) parts.push('', bandwidth);
  const host = hostTimeMarkdown(table);
  if (host) parts.push('', host);
  if (table.notes?.length) parts.push('', ...table.notes);
  return `${parts.join('\n')}\n`;
}

/** The whole report as markdown: the heading, then every table. */
export function reportMarkdown(report: BenchReport): string {
  return reportHeaderMarkdown(report) + report.tables.map((t) => tableSectionMarkdown(t, report)).join('');
}
