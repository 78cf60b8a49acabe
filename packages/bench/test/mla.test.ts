import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { readSafetensors, writeSafetensors } from '@webattn/core';
import { compare, mlaAbsorbedAttention, randn, toleranceFor } from '@webattn/reference';
import { describe, expect, it } from 'vitest';
import { main } from '../src/index.js';

const dir = mkdtempSync(join(tmpdir(), 'webattn-mla-'));

async function cli(...argv: string[]) {
  let out = '';
  let err = '';
  const status = await main(argv, { out: (t) => (out += t), err: (t) => (err += t) });
  return { status, out, err };
}

describe('webattn run mla', () => {
  it('round-trips the kernel-level absorbed attention through safetensors, NaN past each length', async () => {
    const [b, nq, h, r, dr, dv, nk] = [3, 2, 4, 32, 16, 8, 40];
    const lengths = [40, 1, 17];
    const c = randn(b * nk * r, 3);
    const k = randn(b * nk * dr, 4);
    for (const [i, len] of lengths.entries()) {
      c.fill(Number.NaN, (i * nk + len) * r, (i + 1) * nk * r);
      k.fill(Number.NaN, (i * nk + len) * dr, (i + 1) * nk * dr);
    }
    const tensors = {
      q_latent: { shape: [b, nq, h, r], data: randn(b * nq * h * r, 1) },
      q_pe: { shape: [b, nq, h, dr], data: randn(b * nq * h * dr, 2) },
      c_kv: { shape: [b, nk, r], data: c },
      k_pe: { shape: [b, nk, dr], data: k },
      w_uv: { shape: [h, r, dv], data: randn(h * r * dv, 5) },
    };
    const input = join(dir, 'mla.safetensors');
    const output = join(dir, 'o.safetensors');
    writeFileSync(
      input,
      writeSafetensors([
        ...Object.entries(tensors).map(([name, t]) => ({ name, dtype: 'f32' as const, ...t })),
        { name: 'lengths', dtype: 'i32', shape: [b], data: Int32Array.from(lengths) },
      ]),
    );
    const { status, out, err } = await cli(
      'run',
      'mla',
      '--in',
      input,
      '--out',
      output,
      '--config',
      '{"scale": 0.125}',
    );
    expect(err).toBe('');
    expect(status).toBe(0);
    expect(out).toContain(`wrote o [${b}, ${nq}, ${h}, ${dv}] f32`);
    const o = readSafetensors(new Uint8Array(readFileSync(output))).tensors.get('o')!;
    const ref = mlaAbsorbedAttention(
      tensors.q_latent.data,
      tensors.q_pe.data,
      c,
      k,
      tensors.w_uv.data,
      lengths,
      { nq, nk, heads: h, kvLoraRank: r, qkRopeHeadDim: dr, vHeadDim: dv, scale: 0.125 },
    );
    const result = compare(ref, o.data as Float32Array, toleranceFor('f32'));
    expect(result.ok, JSON.stringify(result)).toBe(true);
  });

  it('names a missing scale and float lengths', async () => {
    const input = join(dir, 'bad.safetensors');
    writeFileSync(
      input,
      writeSafetensors([
        { name: 'q_latent', dtype: 'f32', shape: [1, 1, 1, 16], data: randn(16, 1) },
        { name: 'q_pe', dtype: 'f32', shape: [1, 1, 1, 0], data: new Float32Array(0) },
        { name: 'c_kv', dtype: 'f32', shape: [1, 2, 16], data: randn(32, 2) },
        { name: 'k_pe', dtype: 'f32', shape: [1, 2, 0], data: new Float32Array(0) },
        { name: 'w_uv', dtype: 'f32', shape: [1, 16, 4], data: randn(64, 3) },
        { name: 'lengths', dtype: 'f32', shape: [1], data: Float32Array.from([2]) },
      ]),
    );
    const output = join(dir, 'bad-o.safetensors');
    const missing = await cli('run', 'mla', '--in', input, '--out', output, '--config', '{}');
    expect(missing.status).not.toBe(0);
    expect(missing.err).toMatch(/config.scale: expected a number/);
    const floats = await cli('run', 'mla', '--in', input, '--out', output, '--config', '{"scale": 0.5}');
    expect(floats.err).toMatch(/lengths': expected an integer dtype/);
  });
});

describe('webattn bench mla on the CPU adapter', () => {
  it('prints the decode tables with bandwidth, the prefill table and the generation table', async () => {
    const { status, out } = await cli(
      'bench',
      'mla',
      '--no-progress',
      '--iters',
      '1',
      '--warmup',
      '0',
      '--sizes',
      '32',
    );
    expect(status).toBe(0);
    expect(out).toContain('### MLA decode, batch 1');
    expect(out).toContain('latent-cache bytes read / time');
    expect(out).toContain('% of streaming probe');
    expect(out).toContain('### MLA prefill');
    expect(out).toContain('### MLA generation through one layer');
  });
});
