import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { readSafetensors, writeSafetensors } from '@webattn/core';
import {
  attentionBackward,
  attentionForward,
  compare,
  matmul,
  nsaBackward,
  nsaForward,
  randn,
  toleranceFor,
} from '@webattn/reference';
import { describe, expect, it } from 'vitest';
import { main } from '../src/index.js';

const dir = mkdtempSync(join(tmpdir(), 'webattn-run-'));

async function cli(...argv: string[]) {
  let out = '';
  let err = '';
  const status = await main(argv, { out: (t) => (out += t), err: (t) => (err += t) });
  return { status, out, err };
}

function read(path: string) {
  return readSafetensors(new Uint8Array(readFileSync(path))).tensors;
}

describe('webattn run: round trips through safetensors', () => {
  it('matmul with transposeB', async () => {
    const a = randn(5 * 7, 1);
    const b = randn(3 * 7, 2);
    const input = join(dir, 'ab.safetensors');
    const output = join(dir, 'c.safetensors');
    writeFileSync(
      input,
      writeSafetensors([
        { name: 'a', dtype: 'f32', shape: [5, 7], data: a },
        { name: 'b', dtype: 'f32', shape: [3, 7], data: b },
      ]),
    );
    const { status, out } = await cli(
      'run',
      'matmul',
      '--in',
      input,
      '--out',
      output,
      '--config',
      '{"transposeB": true}',
    );
    expect(status).toBe(0);
    expect(out).toContain('wrote c [5, 3] f32');
    const c = read(output).get('c')!;
    expect(c.shape).toEqual([5, 3]);
    expect(
      compare(matmul(a, b, 5, 7, 3, { transposeB: true }), c.data as Float32Array, toleranceFor('f32')).ok,
    ).toBe(true);
  });

  it('flash-attn with do writes o, lse, dq, dk, dv matching the reference', async () => {
    const [b, n, hq, hkv, d] = [1, 19, 4, 2, 16];
    const q = randn(b * n * hq * d, 3);
    const k = randn(b * n * hkv * d, 4);
    const v = randn(b * n * hkv * d, 5);
    const dO = randn(b * n * hq * d, 6);
    const input = join(dir, 'qkv.safetensors');
    const output = join(dir, 'attn.safetensors');
    writeFileSync(
      input,
      writeSafetensors([
        { name: 'q', dtype: 'f32', shape: [b, n, hq, d], data: q },
        { name: 'k', dtype: 'f32', shape: [b, n, hkv, d], data: k },
        { name: 'v', dtype: 'f32', shape: [b, n, hkv, d], data: v },
        { name: 'do', dtype: 'f32', shape: [b, n, hq, d], data: dO },
      ]),
    );
    const { status, err } = await cli(
      'run',
      'flash-attn',
      '--in',
      input,
      '--out',
      output,
      '--config',
      '{"causal": true, "window": [4, 0]}',
    );
    expect(err).toBe('');
    expect(status).toBe(0);
    const got = read(output);
    expect([...got.keys()].sort()).toEqual(['dk', 'dq', 'dv', 'lse', 'o']);
    const shape = { batch: b, n, nk: n, hq, hkv, d, dv: d, causal: true, window: [4, 0] as [number, number] };
    const ref = attentionForward(q, k, v, shape);
    const grads = attentionBackward(q, k, v, ref.o, ref.lse, dO, shape);
    const expected = { o: ref.o, lse: ref.lse, dq: grads.dq, dk: grads.dk, dv: grads.dv };
    for (const [name, values] of Object.entries(expected)) {
      const result = compare(values, got.get(name)!.data as Float32Array, toleranceFor('f32', 4));
      expect(result.ok, `${name}: ${JSON.stringify(result)}`).toBe(true);
    }
  });

  for (const compressor of ['mean', 'weighted', 'swiglu'] as const) {
    const weighted = compressor === 'weighted';
    it(`nsa with do writes o, topk [b, hkv, n, topN] and every gradient matching the reference, ${compressor} compression`, async () => {
      const [b, n, hq, hkv, d] = [1, 29, 4, 2, 16];
      const x = {
        q: randn(b * n * hq * d, 7),
        k: randn(b * n * hkv * d, 8),
        v: randn(b * n * hkv * d, 9),
        g: randn(b * n * hq * 3, 10),
        do: randn(b * n * hq * d, 11),
        // The weighted pooling's parameters (kernelSize 4), around 1 and small.
        // A learned compressor's maps [2 d, 4 d], scaled by 1 / sqrt(fan-in).
        ...(compressor === 'swiglu' && {
          k_weight: randn(2 * d * 4 * d, 12).map((w) => w / Math.sqrt(4 * d)),
          v_weight: randn(2 * d * 4 * d, 14).map((w) => w / Math.sqrt(4 * d)),
        }),
        ...(weighted && {
          k_weight: randn(4, 12).map((w) => 1 + 0.3 * w),
          k_pe: randn(4 * d, 13).map((w) => 0.2 * w),
          v_weight: randn(4, 14).map((w) => 1 + 0.3 * w),
          v_pe: randn(4 * d, 15).map((w) => 0.2 * w),
        }),
      };
      const shapes = {
        q: [b, n, hq, d],
        k: [b, n, hkv, d],
        v: [b, n, hkv, d],
        g: [b, n, hq, 3],
        do: [b, n, hq, d],
        k_weight: weighted ? [4] : [2 * d, 4 * d],
        k_pe: [4, d],
        v_weight: weighted ? [4] : [2 * d, 4 * d],
        v_pe: [4, d],
      };
      const input = join(dir, 'nsa-in.safetensors');
      const output = join(dir, 'nsa-out.safetensors');
      writeFileSync(
        input,
        writeSafetensors(
          Object.entries(x).map(([name, data]) => ({
            name,
            dtype: 'f32' as const,
            shape: shapes[name as keyof typeof shapes],
            data,
          })),
        ),
      );
      const config = {
        kernelSize: 4,
        stride: 2,
        blockSize: 8,
        topN: 3,
        numInitBlocks: 1,
        numLocalBlocks: 1,
        windowSize: 6,
        ...(compressor === 'swiglu' && { compressor }),
      };
      const { status, err } = await cli(
        'run',
        'nsa',
        '--in',
        input,
        '--out',
        output,
        '--config',
        JSON.stringify(config),
      );
      expect(err).toBe('');
      expect(status).toBe(0);
      const got = read(output);
      const params = {
        mean: [],
        weighted: ['dk_pe', 'dk_weight', 'dv_pe', 'dv_weight'],
        swiglu: ['dk_weight', 'dv_weight'],
      }[compressor];
      expect([...got.keys()].sort()).toEqual(['dg', 'dk', ...params, 'dq', 'dv', 'o', 'topk'].sort());
      const topk = got.get('topk')!;
      expect(topk.dtype).toBe('i32');
      expect(topk.shape).toEqual([b, hkv, n, 3]);
      // Back to the reference's token-major layout, to run it on the same selection.
      const selection = new Int32Array(topk.data.length);
      for (let t = 0; t < n; t++)
        for (let h = 0; h < hkv; h++)
          for (let s = 0; s < 3; s++)
            selection[(t * hkv + h) * 3 + s] = (topk.data as Int32Array)[(h * n + t) * 3 + s]!;
      const options = {
        batch: b,
        n,
        hq,
        hkv,
        dqk: d,
        dv: d,
        kernelSize: 4,
        stride: 2,
        selectSize: 8,
        topN: 3,
        initBlocks: 1,
        localBlocks: 1,
        windowSize: 6,
      };
      const compressors =
        x.k_weight &&
        (weighted
          ? {
              kCompressor: { method: 'weighted' as const, weight: x.k_weight, pe: x.k_pe! },
              vCompressor: { method: 'weighted' as const, weight: x.v_weight!, pe: x.v_pe! },
            }
          : {
              kCompressor: { method: 'swiglu' as const, weight: x.k_weight },
              vCompressor: { method: 'swiglu' as const, weight: x.v_weight! },
            });
      const own = nsaForward({ q: x.q, k: x.k, v: x.v, gates: x.g, ...compressors }, options);
      expect(selection).toEqual(own.selection);
      const given = { q: x.q, k: x.k, v: x.v, gates: x.g, selection, ...compressors };
      const ref = nsaForward(given, options);
      const grads = nsaBackward(given, x.do, options);
      const expected = {
        o: ref.o,
        dq: grads.dq,
        dk: grads.dk,
        dv: grads.dv,
        dg: grads.dGates,
        // dk_pe is 0 up to rounding (a shift of every compressed key), so not compared relatively.
        ...(compressor !== 'mean' && {
          dk_weight: grads.kCompressor.weight!,
          dv_weight: grads.vCompressor.weight!,
        }),
        ...(weighted && { dv_pe: grads.vCompressor.pe! }),
      };
      for (const [name, values] of Object.entries(expected)) {
        const result = compare(values, got.get(name)!.data as Float32Array, toleranceFor('f32', 4));
        expect(result.ok, `${name}: ${JSON.stringify(result)}`).toBe(true);
      }
    });
  }

  it('names a missing input tensor and an unknown op', async () => {
    const input = join(dir, 'only-a.safetensors');
    writeFileSync(input, writeSafetensors([{ name: 'a', dtype: 'f32', shape: [2, 2], data: randn(4, 1) }]));
    const missing = await cli('run', 'matmul', '--in', input, '--out', join(dir, 'x.safetensors'));
    expect(missing.status).toBe(1);
    expect(missing.err).toMatch(/input tensor 'b' is missing; the file has: a/);
    const unknown = await cli('run', 'softmax', '--in', input, '--out', join(dir, 'x.safetensors'));
    expect(unknown.err).toMatch(/unknown op 'softmax'; available: matmul, flash-attn, nsa/);
  });
});
