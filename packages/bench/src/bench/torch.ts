/**
 * Merging baselines measured outside WebGPU (scripts/torch_baseline.py, PyTorch on the same
 * machine) into bench tables as extra columns.
 */
import { readFileSync } from 'node:fs';
import type { BenchTable } from './types.js';

/** The JSON torch_baseline.py writes: table id -> column -> size -> ms. */
export interface ExternalBaselines {
  source: string;
  tables: Record<string, Record<string, Record<string, number>>>;
}

/** Reads and checks a baselines file; errors name the file and the offending entry. */
export function readBaselines(path: string): ExternalBaselines {
  let parsed: unknown;
  try {
    parsed = JSON.parse(readFileSync(path, 'utf8'));
  } catch (error) {
    throw new Error(
      `--torch ${path}: cannot read JSON (${error instanceof Error ? error.message : String(error)})`,
    );
  }
  const p = parsed as Partial<ExternalBaselines>;
  if (typeof p !== 'object' || p === null || typeof p.tables !== 'object' || p.tables === null) {
    throw new Error(
      `--torch ${path}: expected an object with 'tables' (as written by scripts/torch_baseline.py)`,
    );
  }
  for (const [table, columns] of Object.entries(p.tables)) {
    for (const [column, sizes] of Object.entries(columns ?? {})) {
      for (const [size, value] of Object.entries(sizes ?? {})) {
        if (!Number.isFinite(Number(size)) || typeof value !== 'number' || !(value > 0)) {
          throw new Error(
            `--torch ${path}: tables.${table}.${column}.${size}: expected a positive number of ms`,
          );
        }
      }
    }
  }
  return { source: typeof p.source === 'string' ? p.source : path, tables: p.tables };
}

/**
 * Adds every external column whose table id matches (the table's `externalFrom` where it names
 * another table measured on the same problem), at the sizes both have.
 */
export function mergeBaselines(tables: BenchTable[], baselines: ExternalBaselines): void {
  for (const table of tables) {
    const external = baselines.tables[table.externalFrom ?? table.id];
    if (!external) continue;
    for (const [column, sizes] of Object.entries(external)) {
      const hits = table.rows.filter((row) => sizes[String(row.size)] !== undefined);
      if (hits.length === 0) continue;
      table.columns.push(column);
      for (const row of hits) row.cells[column] = { ms: sizes[String(row.size)]!, source: 'external' };
    }
  }
}
