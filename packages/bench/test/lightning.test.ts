import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type Gpu, readSafetensors, writeSafetensors } from '@webattn/core';
import { testGpu } from '@webattn/core/testing';
import {
  compare,
  randn,
  lightningAttentionBackward as refBackward,
  lightningAttention as refForward,
  toleranceFor,
} from '@webattn/reference';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { lightningTables } from '../src/bench/linear-suite.js';
import { runTables } from '../src/bench/runner.js';
import { main, runChecks } from '../src/index.js';
import { lightningChecks } from '../src/verify/linear-checks.js';

describe('lightning attention in the CLI', () => {
  let gpu: Gpu;
  beforeAll(async () => {
    gpu = await testGpu();
  });
  afterAll(() => gpu.destroy());

  it('verify: every lightning check passes on this adapter', async () => {
    const all = lightningChecks(gpu);
    expect(all.length).toBeGreaterThan(0);
    // The portable tier's checks (the subgroups tier runs the same kernels).
    const checks = all.filter((c) => c.tier === 'portable');
    expect(checks.length).toBe(5);
    const lines = await runChecks(gpu, checks, () => undefined);
    const failed = lines
      .filter((l) => !l.ok)
      .map((l) => `${l.check.name} ${l.output} ${l.error ?? JSON.stringify(l.comparison)}`);
    expect(failed).toEqual([]);
  }, 300_000);

  it('bench: the lightning tables run at CPU sizes', async () => {
    const specs = lightningTables(gpu, { cpu: true, sizes: [64] });
    const errors: string[] = [];
    const tables = await runTables(gpu, specs, {
      warmup: 0,
      iters: 1,
      progress: false,
      onError: (m) => errors.push(m),
    });
    expect(errors).toEqual([]);
    expect(tables.map((t) => t.id)).toEqual([
      'linear-lightning-fwd-h2',
      'linear-lightning-bwd-h2',
      'linear-lightning-fwd-stages',
      'linear-lightning-bwd-stages',
      'linear-lightning-decode',
    ]);
    for (const t of tables)
      for (const row of t.rows)
        for (const c of t.columns) expect(row.cells[c]?.ms, `${t.id} ${c}`).toBeGreaterThan(0);
    // Without tensor cores the states and their scan run apart; the fused pass's column is left out.
    const stages = (id: string) => tables.find((t) => t.id === id)?.columns;
    expect(stages('linear-lightning-fwd-stages')).toEqual(['chunk states', 'scan', 'output']);
    expect(stages('linear-lightning-bwd-stages')).toEqual(['chunk states', 'scans', 'dq', 'dk', 'dv']);
  });

  it('run linear-attn with slopes and do writes o, final_state, dq, dk, dv matching the reference', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'webattn-lightning-'));
    const [b, n, hq, hkv, d] = [1, 45, 4, 2, 16];
    const slopes = [0.5, 0.25, 0.125, 0.0625];
    const x = {
      q: randn(b * n * hq * d, 1),
      k: randn(b * n * hkv * d, 2),
      v: randn(b * n * hkv * d, 3),
      dO: randn(b * n * hq * d, 4),
    };
    const input = join(dir, 'in.safetensors');
    const output = join(dir, 'out.safetensors');
    writeFileSync(
      input,
      writeSafetensors([
        { name: 'q', dtype: 'f32', shape: [b, n, hq, d], data: x.q },
        { name: 'k', dtype: 'f32', shape: [b, n, hkv, d], data: x.k },
        { name: 'v', dtype: 'f32', shape: [b, n, hkv, d], data: x.v },
        { name: 'slopes', dtype: 'f32', shape: [hq], data: Float32Array.from(slopes) },
        { name: 'do', dtype: 'f32', shape: [b, n, hq, d], data: x.dO },
      ]),
    );
    let err = '';
    const status = await main(
      [
        'run',
        'linear-attn',
        '--in',
        input,
        '--out',
        output,
        '--config',
        '{"scale": 1, "cuSeqlens": [0, 20, 45]}',
      ],
      {
        out: () => undefined,
        err: (t) => (err += t),
      },
    );
    expect(err).toBe('');
    expect(status).toBe(0);
    const got = readSafetensors(new Uint8Array(readFileSync(output))).tensors;
    expect([...got.keys()].sort()).toEqual(['dk', 'dq', 'dv', 'final_state', 'o']);
    const options = { batch: b, n, hq, hkv, dk: d, dv: d, scale: 1, cuSeqlens: [0, 20, 45] };
    const inputs = { q: x.q, k: x.k, v: x.v, decays: slopes.map((s) => Math.exp(-s)) };
    const ref = refForward(inputs, options);
    const grads = refBackward(inputs, { dO: x.dO }, options);
    const expected = { o: ref.o, final_state: ref.finalState, dq: grads.dq, dk: grads.dk, dv: grads.dv };
    for (const [name, values] of Object.entries(expected)) {
      const result = compare(values, got.get(name)!.data as Float32Array, toleranceFor('f32', 16));
      expect(result.ok, `${name}: ${JSON.stringify(result)}`).toBe(true);
    }
    expect(got.get('final_state')!.shape).toEqual([2, hq, d, d]);
  });
});
