/** The seed-style line chart (time against size per implementation, log scales), drawn with Vega-Lite. */
import { parse, View } from 'vega';
import { compile, type TopLevelSpec } from 'vega-lite';
import type { BenchReport } from './types.js';

/** The Vega-Lite specification of a report's charts, one per table, stacked. */
export function chartSpec(report: BenchReport): TopLevelSpec {
  const charts = report.tables.map((table) => ({
    title: table.title,
    width: 420,
    height: 260,
    data: {
      values: table.rows.flatMap((row) =>
        table.columns.flatMap((column) => {
          const cell = row.cells[column];
          return cell ? [{ size: row.size, ms: cell.ms, implementation: column }] : [];
        }),
      ),
    },
    mark: { type: 'line' as const, point: true },
    encoding: {
      x: {
        field: 'size',
        type: 'quantitative' as const,
        title: table.sizeLabel,
        scale: { type: 'log' as const, base: 2 },
      },
      y: { field: 'ms', type: 'quantitative' as const, title: 'ms (log)', scale: { type: 'log' as const } },
      color: { field: 'implementation', type: 'nominal' as const, title: null, legend: { labelLimit: 400 } },
    },
  }));
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title: { text: `webattn bench — ${report.adapter}`, subtitle: report.date },
    vconcat: charts,
  } as TopLevelSpec;
}

/** Renders the report's charts to an SVG document. */
export async function reportSvg(report: BenchReport): Promise<string> {
  const view = new View(parse(compile(chartSpec(report)).spec), { renderer: 'none' });
  try {
    return await view.toSVG();
  } finally {
    view.finalize();
  }
}
