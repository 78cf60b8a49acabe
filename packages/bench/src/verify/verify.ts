/** Runs checks and prints one line each; the exit status is 1 when any fails. */
import type { Gpu } from '@webattn/core';
import type { Check, CheckLine } from './check.js';

const fmt = (x: number) => (Number.isFinite(x) ? x.toExponential(2) : String(x));

/** One printed line for a check's output. */
export function formatCheckLine(line: CheckLine): string {
  const status = line.ok ? 'PASS' : 'FAIL';
  const head = `${status}  ${line.check.suite.padEnd(6)} ${line.check.name} -> ${line.output}`;
  if (line.error) return `${head}  error: ${line.error}`;
  const c = line.comparison!;
  const nonFinite = c.nonFinite ? `  non-finite ${c.nonFinite}` : '';
  return `${head}  max ${fmt(c.maxAbs)} rms ${fmt(c.rmsRel)}  (tol max ${fmt(c.tolerance.maxAbs)} rms ${fmt(c.tolerance.rmsRel)})${nonFinite}`;
}

/** Runs every check in order, reporting each line as it completes. */
export async function runChecks(
  gpu: Gpu,
  checks: readonly Check[],
  report: (line: string) => void,
): Promise<CheckLine[]> {
  const lines: CheckLine[] = [];
  for (const check of checks) {
    let results: CheckLine[];
    try {
      const outputs = await check.run(gpu);
      results = outputs.map(({ output, comparison }) => ({ check, output, comparison, ok: comparison.ok }));
    } catch (error) {
      results = [
        { check, output: '*', error: error instanceof Error ? error.message : String(error), ok: false },
      ];
    }
    for (const line of results) {
      lines.push(line);
      report(formatCheckLine(line));
    }
  }
  return lines;
}
