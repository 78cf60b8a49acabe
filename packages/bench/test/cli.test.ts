import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { main, VERSION } from '../src/index.js';

async function cli(...argv: string[]) {
  let out = '';
  let err = '';
  const status = await main(argv, { out: (t) => (out += t), err: (t) => (err += t) });
  return { status, out, err };
}

describe('argument parsing', () => {
  it('prints help with examples for every command', async () => {
    for (const command of ['info', 'verify', 'bench', 'run']) {
      const { status, out } = await cli(command, '--help');
      expect(status).toBe(0);
      expect(out).toMatch(/Examples?:/);
    }
    expect((await cli('--version')).out.trim()).toBe(VERSION);
  });

  it('names the bad flag and the allowed values', async () => {
    const badSuite = await cli('bench', 'everything');
    expect(badSuite.status).toBe(1);
    expect(badSuite.err).toMatch(
      /value 'everything' is invalid for argument 'suite'. Allowed choices are core, flash, nsa, mla, linear, all/,
    );
    const badDtype = await cli('bench', 'core', '--dtype', 'bf16');
    expect(badDtype.err).toMatch(
      /option '--dtype <dtype>' argument 'bf16' is invalid. Allowed choices are f32, f16/,
    );
    const badSizes = await cli('bench', 'core', '--sizes', '64,x');
    expect(badSizes.err).toMatch(/--sizes <list>.*expected positive integers separated by commas/);
    const badTier = await cli('verify', 'core', '--tier', 'tensor');
    expect(badTier.err).toMatch(/Allowed choices are portable, subgroups, f16, subgroup-matrix/);
    const badConfig = await cli('run', 'matmul', '--in', 'a', '--out', 'b', '--config', '[1]');
    expect(badConfig.err).toMatch(/--config <json>.*expected a JSON object/);
    const missing = await cli('run', 'matmul', '--out', 'b');
    expect(missing.err).toMatch(/required option '--in <file>' not specified/);
  });
});

describe('commands on a real adapter', () => {
  it('info lists the adapter, tiers and limits', async () => {
    const { status, out } = await cli('info');
    expect(status).toBe(0);
    expect(out).toMatch(/^adapter {6}\S/m);
    expect(out).toMatch(/^tiers {8}portable/m);
    expect(out).toMatch(/maxComputeWorkgroupStorageSize +\d+ bytes/);
  });

  // Every suite's checks run in its own package's tests and in CI's `webattn verify all`; here the
  // command's output on the fastest suite.
  it('verify passes every variant of a suite and ends with the pass/fail count', async () => {
    const { status, out } = await cli('verify', 'core');
    expect(out).not.toMatch(/^FAIL/m);
    expect(out).toMatch(/^PASS {2}core +matmul tiled \[portable\]/m);
    expect(out).toMatch(/^\d+ passed, 0 failed$/m);
    expect(status).toBe(0);
  });

  it('bench core writes a table, JSON and SVG, with the CPU banner on a CPU adapter', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'webattn-bench-'));
    // Output folders are created as needed.
    const json = join(dir, 'new', 'bench.json');
    const svg = join(dir, 'new', 'bench.svg');
    const { status, out, err } = await cli(
      'bench',
      'core',
      '--sizes',
      '16,40',
      '--iters',
      '2',
      '--warmup',
      '0',
      '--json',
      json,
      '--svg',
      svg,
      '--no-progress',
    );
    expect(err).not.toMatch(/webattn:/);
    expect(status).toBe(0);
    expect(out).toMatch(/\| n \| tiled f32 ms \|/);
    expect(out).toMatch(/^\| 40 \| [\d.]+ \(/m);
    const report = JSON.parse(readFileSync(json, 'utf8'));
    expect(report.tables[0].rows.map((r: { size: number }) => r.size)).toEqual([16, 40]);
    expect(report.ceilings.streamingGBps).toBeGreaterThan(0);
    if (report.cpuAdapter) {
      expect(err).toMatch(/CPU adapter: these times .* say nothing about GPU speed/);
      expect(out).toMatch(/say nothing about GPU speed/);
    }
    const drawn = readFileSync(svg, 'utf8');
    expect(drawn.startsWith('<svg')).toBe(true);
    expect(drawn).toContain('tiled f32');
  });
});
