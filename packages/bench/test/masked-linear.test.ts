import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type Gpu, readSafetensors, writeSafetensors } from '@webattn/core';
import { testGpu } from '@webattn/core/testing';
import {
  compare,
  maskedLinearAttention,
  maskedLinearAttentionBackward,
  randn,
  toleranceFor,
} from '@webattn/reference';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { maskedLinearTables } from '../src/bench/masked-linear-suite.js';
import { runTables } from '../src/bench/runner.js';
import { reportMarkdown } from '../src/bench/table.js';
import { main } from '../src/index.js';

const dir = mkdtempSync(join(tmpdir(), 'webattn-masked-'));

async function cli(...argv: string[]) {
  let out = '';
  let err = '';
  const status = await main(argv, { out: (t) => (out += t), err: (t) => (err += t) });
  return { status, out, err };
}

describe('webattn run linear-attn, mask form', () => {
  it('writes o, dq, dk, dv and dm (shaped like m) matching the reference', async () => {
    const [b, n, hq, hkv, d] = [2, 9, 4, 2, 8];
    const x = {
      q: randn(b * n * hq * d, 1),
      k: randn(b * n * hkv * d, 2),
      v: randn(b * n * hkv * d, 3),
      m: randn(b * n * n, 4),
      do: randn(b * n * hq * d, 5),
    };
    const input = join(dir, 'in.safetensors');
    const output = join(dir, 'out.safetensors');
    writeFileSync(
      input,
      writeSafetensors([
        { name: 'q', dtype: 'f32', shape: [b, n, hq, d], data: x.q },
        { name: 'k', dtype: 'f32', shape: [b, n, hkv, d], data: x.k },
        { name: 'v', dtype: 'f32', shape: [b, n, hkv, d], data: x.v },
        { name: 'm', dtype: 'f32', shape: [b, 1, n, n], data: x.m },
        { name: 'do', dtype: 'f32', shape: [b, n, hq, d], data: x.do },
      ]),
    );
    const { status, out, err } = await cli(
      'run',
      'linear-attn',
      '--in',
      input,
      '--out',
      output,
      '--config',
      '{"implementation": "blocked", "scale": 0.5}',
    );
    expect(err).toBe('');
    expect(status).toBe(0);
    expect(out).toContain('wrote dm [2, 1, 9, 9] f32');
    const got = readSafetensors(new Uint8Array(readFileSync(output))).tensors;
    const options = { batch: b, n, hq, hkv, dk: d, dv: d, maskBatch: b, maskHeads: 1 };
    const qScaled = x.q.map((value) => value * 0.5);
    const refO = maskedLinearAttention(qScaled, x.k, x.v, x.m, options);
    const refG = maskedLinearAttentionBackward(qScaled, x.k, x.v, x.m, x.do, options);
    const expected: Record<string, Float32Array> = {
      o: refO,
      dq: refG.dq.map((value) => value * 0.5),
      dk: refG.dk,
      dv: refG.dv,
      dm: refG.dm,
    };
    for (const [name, ref] of Object.entries(expected)) {
      const t = got.get(name)!;
      expect(compare(ref, t.data as Float32Array, toleranceFor('f32', 10)).ok, name).toBe(true);
    }
  });

  it('names a bad config key and a missing selector tensor', async () => {
    const input = join(dir, 'qkv.safetensors');
    writeFileSync(
      input,
      writeSafetensors(
        ['q', 'k', 'v'].map((name) => ({
          name,
          dtype: 'f32' as const,
          shape: [1, 2, 1, 4],
          data: randn(8, 1),
        })),
      ),
    );
    const none = await cli('run', 'linear-attn', '--in', input, '--out', join(dir, 'x.safetensors'));
    expect(none.status).toBe(1);
    expect(none.err).toMatch(/expected exactly one of the tensors m, slopes, got neither/);
  });
});

describe('webattn bench linear, masked tables', () => {
  let gpu: Gpu;
  beforeAll(async () => {
    gpu = await testGpu();
  });
  afterAll(() => gpu.destroy());

  it('times naive, blocked and fused and reports their peak memory, naive the largest', async () => {
    const specs = maskedLinearTables(gpu, { cpu: true, sizes: [48], tier: 'portable' });
    const tables = await runTables(gpu, specs, { warmup: 0, iters: 1, progress: false });
    expect(tables.map((t) => t.id)).toEqual(['linear-masked-fwd', 'linear-masked-bwd']);
    for (const table of tables) {
      expect(table.columns).toEqual(['naive portable', 'blocked portable', 'fused portable']);
      expect(Object.keys(table.rows[0]!.cells)).toHaveLength(3);
      const notes = table.notes!.join('\n');
      // n = 48, h = 2: naive holds [1, 2, 48, 48] f32 scores (18 KiB) beyond the outputs.
      const row = table.notes!.find((line) => line.startsWith('| 48 |'))!;
      const ratios = row
        .split('|')
        .map((c) => c.trim())
        .filter((c) => c.endsWith('x'));
      expect(ratios).toHaveLength(3);
      expect(ratios[0]).toBe('1.00x');
      expect(Number.parseFloat(ratios[1]!)).toBeLessThan(1);
      expect(notes).toMatch(/Peak bytes allocated by the masked/);
    }
    const markdown = reportMarkdown({
      tool: 'webattn',
      date: 'now',
      adapter: 'test',
      cpuAdapter: true,
      iterations: 1,
      ceilings: {},
      tables,
    });
    expect(markdown).toMatch(/naive portable \/ naive/);
  });
});
