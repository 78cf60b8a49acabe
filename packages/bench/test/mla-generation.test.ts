import { type Gpu, randomNormal } from '@webattn/core';
import { testGpu } from '@webattn/core/testing';
import { rmsRelativeError } from '@webattn/reference';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  absorbedGenerationLayer,
  eagerGenerationLayer,
  type GenerationLayerFactory,
  type GenerationShape,
  generate,
  generationConfig,
  generationDims,
  generationWeights,
  mlaGenerationTable,
} from '../src/bench/mla-generation-suite.js';
import { runTables } from '../src/bench/runner.js';

describe('the MLA generation table (bench mla, table c)', () => {
  let gpu: Gpu;
  beforeAll(async () => {
    gpu = await testGpu();
  });
  afterAll(() => gpu.destroy());

  it('the eager layer over its dense K/V cache ends where the absorbed layer (checked against the reference) does', async () => {
    // A prompt that fills no page or tile exactly, and decode steps that grow past it.
    const shape: GenerationShape = { batch: 2, prompt: 5, steps: 3 };
    const dims = generationDims(true);
    const config = generationConfig(dims, 'portable');
    const weights = generationWeights(dims, 1);
    using prompt = await randomNormal(gpu, [shape.batch * shape.prompt, dims.hiddenSize], 1);
    using token = await randomNormal(gpu, [shape.batch, dims.hiddenSize], 2);
    // Twice per layer: the second generation must start from empty sequences again.
    const lastStep = async (make: GenerationLayerFactory) => {
      const layer = make(gpu, weights, config, shape);
      try {
        const runs = [];
        for (let i = 0; i < 2; i++) {
          using out = await generate(layer, shape, prompt, token);
          expect(out.shape).toEqual([shape.batch, dims.hiddenSize]);
          runs.push(await out.read());
        }
        expect(rmsRelativeError(runs[0]!, runs[1]!)).toBeLessThan(1e-6);
        return runs[0]!;
      } finally {
        layer.dispose();
      }
    };
    const absorbed = await lastStep(absorbedGenerationLayer);
    const eager = await lastStep(eagerGenerationLayer);
    expect(absorbed.every(Number.isFinite)).toBe(true);
    expect(rmsRelativeError(absorbed, eager)).toBeLessThan(1e-3);
  });

  it('runs at CPU sizes with both columns filled', async () => {
    const spec = mlaGenerationTable(true, undefined, ['portable'], () => 'f32');
    const errors: string[] = [];
    const [table] = await runTables(gpu, [spec], {
      warmup: 0,
      iters: 1,
      progress: false,
      onError: (e) => errors.push(e),
    });
    expect(errors).toEqual([]);
    expect(table!.columns).toEqual(['unabsorbed f32', 'mla f32']);
    for (const row of table!.rows) {
      for (const name of table!.columns) expect(row.cells[name]?.ms).toBeGreaterThan(0);
    }
  });
});
