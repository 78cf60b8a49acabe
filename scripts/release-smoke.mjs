// Smoke test of the packed packages, run by scripts/release-check.sh inside a scratch npm project
// outside the workspace, where the @webattn packages were installed from their tarballs. It imports
// every package by name, the way a user does, so a missing file, a wrong exports map or a dependency
// that only the workspace provided fails here, and it runs one real op per family on WebGPU
// (SwiftShader on a machine without a GPU). Plain JS: the scratch project has no TypeScript.
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { createGpu, flashAttention, Tensor } from '@webattn/core';
import { disposeLightningContext, lightningAttention } from '@webattn/linear-attn';
import { mlaAttention } from '@webattn/mla';
import { disposeNsaForward, nsaForward, readSelection, resolveNsaConfigFromReference } from '@webattn/nsa';
import {
  attentionForward,
  compare,
  maxAbsError,
  mlaAbsorbedAttention,
  randn,
  lightningAttention as referenceLightning,
  nsaForward as referenceNsaForward,
  toleranceFor,
} from '@webattn/reference';

// Every published package; the install check below fails when a tarball is not listed here.
const PACKAGES = ['core', 'reference', 'nsa', 'mla', 'linear-attn', 'bench'];

let failures = 0;
function check(name, ok, detail = '') {
  console.log(`${ok ? 'ok  ' : 'FAIL'} ${name}${detail ? `: ${detail}` : ''}`);
  if (!ok) failures++;
}

/** Runs one check; an exception fails it instead of ending the run, so every failure is listed. */
async function step(name, body) {
  try {
    await body();
  } catch (error) {
    check(name, false, error instanceof Error ? (error.stack ?? error.message) : String(error));
  }
}

const sizeOf = (shape) => shape.reduce((a, b) => a * b, 1);

// Every @webattn package must come from its tarball, installed once at the top level: a copy fetched
// from the registry, or a nested second copy, would mean the smoke test is not testing what was packed.
await step('install', () => {
  const lock = JSON.parse(readFileSync('package-lock.json', 'utf8'));
  const entries = Object.entries(lock.packages).filter(([path]) => path.includes('node_modules/@webattn/'));
  const top = entries.filter(([path]) => /^node_modules\/@webattn\/[^/]+$/.test(path));
  const notTarball = entries.filter(([, meta]) => !String(meta.resolved ?? '').startsWith('file:'));
  check(
    'install: every @webattn package resolved to its tarball, once',
    top.length === PACKAGES.length && entries.length === PACKAGES.length && notTarball.length === 0,
    entries.map(([path, meta]) => `${path} <- ${meta.resolved}`).join(', '),
  );
});

// The exports maps: package.json is exported (tools read versions through it) and resolves by name.
await step('package.json exports', () => {
  const require = createRequire(import.meta.url);
  for (const name of PACKAGES) {
    const pkg = require(`@webattn/${name}/package.json`);
    check(`@webattn/${name}/package.json`, pkg.name === `@webattn/${name}`, pkg.version);
  }
});

// Source maps and declaration maps ship with dist and point into src: every source they name must be
// in the package, or debuggers, go-to-definition and bundlers' source-map loaders hit missing files.
await step('source maps', () => {
  for (const name of PACKAGES) {
    const root = join('node_modules', '@webattn', name);
    const maps = readdirSync(join(root, 'dist'), { recursive: true }).filter((f) => f.endsWith('.map'));
    const missing = maps.flatMap((file) => {
      const path = join(root, 'dist', file);
      const map = JSON.parse(readFileSync(path, 'utf8'));
      return map.sources
        .map((source) => join(dirname(path), map.sourceRoot ?? '', source))
        .filter((source) => !existsSync(source));
    });
    check(
      `@webattn/${name} source maps resolve`,
      maps.length > 0 && missing.length === 0,
      missing.length ? `missing ${missing.slice(0, 3).join(', ')}` : `${maps.length} maps`,
    );
  }
});

// createGpu finds SwiftShader by itself on a machine without a GPU driver (see @webattn/core's README).
const gpu = await createGpu();
console.log(`adapter: ${gpu.caps.adapter.description || gpu.caps.adapter.vendor} (tiers ${gpu.caps.tiers})`);

await step('@webattn/core flashAttention', async () => {
  // Causal GQA with sizes off the kernel's tile sizes, against the f64 reference.
  const shape = { batch: 2, n: 19, nk: 19, hq: 4, hkv: 2, d: 16, dv: 16, causal: true };
  const qs = [shape.batch, shape.n, shape.hq, shape.d];
  const ks = [shape.batch, shape.nk, shape.hkv, shape.d];
  const vs = [shape.batch, shape.nk, shape.hkv, shape.dv];
  const host = { q: randn(sizeOf(qs), 1), k: randn(sizeOf(ks), 2), v: randn(sizeOf(vs), 3) };
  const q = Tensor.from(gpu, host.q, qs);
  const k = Tensor.from(gpu, host.k, ks);
  const v = Tensor.from(gpu, host.v, vs);
  const { o, lse } = await flashAttention(gpu, q, k, v, { causal: true });
  const ref = attentionForward(host.q, host.k, host.v, shape);
  const actual = await o.read();
  const comparison = compare(ref.o, actual, toleranceFor('f32'));
  check(
    '@webattn/core flashAttention vs @webattn/reference attentionForward',
    comparison.ok && o.shape.join() === [shape.batch, shape.n, shape.hq, shape.dv].join(),
    `shape [${o.shape}], max error ${maxAbsError(ref.o, actual).toExponential(2)}, lse max error ${maxAbsError(ref.lse, await lse.read()).toExponential(2)}`,
  );
  // Node 20 has no `using`: tensors are freed by hand.
  for (const t of [q, k, v, o, lse]) t.dispose();
});

await step('@webattn/nsa nsaForward', async () => {
  // Small hyper-parameters so that all three branches have work in a few dozen tokens.
  const small = {
    kernelSize: 4,
    stride: 2,
    selectSize: 8,
    topN: 3,
    windowSize: 6,
    initBlocks: 1,
    localBlocks: 2,
  };
  const [batch, n, hq, hkv, d] = [1, 29, 4, 2, 16];
  const config = resolveNsaConfigFromReference({ heads: hq, kvHeads: hkv, headDim: d }, small);
  const host = {
    q: randn(batch * n * hq * d, 11),
    k: randn(batch * n * hkv * d, 12),
    v: randn(batch * n * hkv * d, 13),
    gates: randn(batch * n * hq * 3, 14),
  };
  const q = Tensor.from(gpu, host.q, [batch, n, hq, d]);
  const k = Tensor.from(gpu, host.k, [batch, n, hkv, d]);
  const v = Tensor.from(gpu, host.v, [batch, n, hkv, d]);
  const g = Tensor.from(gpu, host.gates, [batch, n, hq, 3]);
  const result = await nsaForward(gpu, config, q, k, v, g);
  const o = await result.o.read();
  const finite = o.every(Number.isFinite);
  const shaped = result.o.shape.join() === [batch, n, hq, d].join() && o.length === batch * n * hq * d;
  // The reference on the GPU's own selection (near ties may select differently, the rest may not).
  const selection = await readSelection(result.selection);
  const ref = referenceNsaForward({ ...host, selection }, { batch, n, hq, hkv, dqk: d, dv: d, ...small });
  const comparison = compare(ref.o, o, toleranceFor('f32'));
  check(
    '@webattn/nsa nsaForward',
    finite && shaped && comparison.ok,
    `shape [${result.o.shape}], finite ${finite}, max error vs reference ${maxAbsError(ref.o, o).toExponential(2)}`,
  );
  disposeNsaForward(result);
  for (const t of [q, k, v, g]) t.dispose();
});

await step('@webattn/mla mlaAttention', async () => {
  // Two sequences of different lengths, two queries at each one's end, against the reference.
  const [heads, r, dr, dv, nq, lengths] = [4, 32, 16, 16, 2, [40, 17]];
  const b = lengths.length;
  const nk = Math.max(...lengths);
  const scale = (r / 4 + dr) ** -0.5;
  const host = {
    ql: randn(b * nq * heads * r, 61),
    qp: randn(b * nq * heads * dr, 62),
    c: randn(b * nk * r, 63),
    k: randn(b * nk * dr, 64),
    w: randn(heads * r * dv, 65, 1 / Math.sqrt(r)),
  };
  const tensors = [
    Tensor.from(gpu, host.ql, [b, nq, heads, r]),
    Tensor.from(gpu, host.qp, [b, nq, heads, dr]),
    Tensor.from(gpu, host.c, [b, nk, r]),
    Tensor.from(gpu, host.k, [b, nk, dr]),
    Tensor.from(gpu, host.w, [heads, r, dv]),
  ];
  const o = await mlaAttention(gpu, ...tensors, lengths, { scale });
  const actual = await o.read();
  const dims = { nq, nk, heads, kvLoraRank: r, qkRopeHeadDim: dr, vHeadDim: dv, scale };
  const ref = mlaAbsorbedAttention(host.ql, host.qp, host.c, host.k, host.w, lengths, dims);
  check(
    '@webattn/mla mlaAttention vs @webattn/reference mlaAbsorbedAttention',
    compare(ref, actual, toleranceFor('f32')).ok && o.shape.join() === [b, nq, heads, dv].join(),
    `shape [${o.shape}], max error ${maxAbsError(ref, actual).toExponential(2)}`,
  );
  for (const t of [...tensors, o]) t.dispose();
});

await step('@webattn/linear-attn lightningAttention', async () => {
  // Chunkwise decayed linear attention with GQA over a length off the chunk size.
  const [batch, n, hq, hkv, dk, dv] = [2, 45, 4, 2, 16, 16];
  const decays = [0.999, 0.99, 0.9, 0.5];
  const host = {
    q: randn(batch * n * hq * dk, 71),
    k: randn(batch * n * hkv * dk, 72),
    v: randn(batch * n * hkv * dv, 73),
  };
  const q = Tensor.from(gpu, host.q, [batch, n, hq, dk]);
  const k = Tensor.from(gpu, host.k, [batch, n, hkv, dk]);
  const v = Tensor.from(gpu, host.v, [batch, n, hkv, dv]);
  const result = await lightningAttention(gpu, q, k, v, { decays });
  const actual = await result.o.read();
  const ref = referenceLightning({ ...host, decays }, { batch, n, hq, hkv, dk, dv });
  const magnitude = Math.max(1, ...Array.from(ref.o, Math.abs));
  check(
    '@webattn/linear-attn lightningAttention vs @webattn/reference lightningAttention',
    compare(ref.o, actual, toleranceFor('f32', magnitude)).ok,
    `max error ${maxAbsError(ref.o, actual).toExponential(2)} (values up to ${magnitude.toFixed(1)})`,
  );
  for (const t of [q, k, v, result.o, result.finalState]) t.dispose();
  disposeLightningContext(result.ctx);
});

gpu.destroy();
console.log(failures === 0 ? 'release smoke: all passed' : `release smoke: ${failures} failed`);
// dawn.node keeps the process alive: exit explicitly.
process.exit(failures === 0 ? 0 : 1);
