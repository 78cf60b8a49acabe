#!/usr/bin/env python3
"""PyTorch baselines for `webattn bench --torch FILE`, measured on the same machine as the bench.

Writes {"source": ..., "tables": {table_id: {column: {size: ms}}}} with the table ids the bench uses:
  matmul            torch.matmul f16 (cuBLAS), square n x n
  flash-fwd/-bwd    SDPA with the flash backend (the FA2 column) and the cuDNN backend (FA3-class),
                    b=1, hq=64, hkv=4, d=128, causal, bf16 (the seed tables' shapes)
  linear-lightning-fwd/-bwd-h{16,32}
                    fla's Triton chunk_simple_gla with a constant per-head decay (lightning
                    attention: lambda_h = exp(-slope_h), ALiBi slopes), b=1, d=128, f16, where the
                    flash-linear-attention package (`fla`) can be imported; skipped otherwise
Timing: CUDA events, warm-up, median of --iters runs.

Usage: python3 torch_baseline.py --out torch.json [--sizes 4096,8192] [--matmul-sizes 1024,2048] [--iters 10]
"""
import argparse
import json
import statistics
import sys


def cuda_ms(fn, warmup, iters):
    import torch

    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(iters):
        start = torch.cuda.Event(enable_timing=True)
        end = torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        torch.cuda.synchronize()
        times.append(start.elapsed_time(end))
    return statistics.median(times)


def matmul_baselines(sizes, warmup, iters):
    import torch

    column = {}
    for n in sizes:
        a = torch.randn(n, n, device="cuda", dtype=torch.float16)
        b = torch.randn(n, n, device="cuda", dtype=torch.float16)
        column[str(n)] = cuda_ms(lambda: a @ b, warmup, iters)
    return {"torch f16 (cuBLAS)": column}


def sdpa_baselines(sizes, warmup, iters, heads=64, kv_heads=4, dim=128):
    import torch
    import torch.nn.functional as F
    from torch.nn.attention import SDPBackend, sdpa_kernel

    backends = {"PyTorch FA2 (flash)": SDPBackend.FLASH_ATTENTION, "PyTorch cuDNN": SDPBackend.CUDNN_ATTENTION}
    fwd, bwd = {}, {}
    for name, backend in backends.items():
        fwd[name], bwd[name] = {}, {}
        for n in sizes:
            q = torch.randn(1, heads, n, dim, device="cuda", dtype=torch.bfloat16, requires_grad=True)
            k = torch.randn(1, kv_heads, n, dim, device="cuda", dtype=torch.bfloat16)
            v = torch.randn(1, kv_heads, n, dim, device="cuda", dtype=torch.bfloat16)
            # Expanded outside the timed region: not every backend takes grouped KV heads directly.
            group = heads // kv_heads
            k = k.repeat_interleave(group, dim=1).requires_grad_(True)
            v = v.repeat_interleave(group, dim=1).requires_grad_(True)
            try:
                with sdpa_kernel(backend):
                    forward = lambda: F.scaled_dot_product_attention(q, k, v, is_causal=True)
                    fwd[name][str(n)] = cuda_ms(forward, warmup, iters)
                    out = forward()
                    grad = torch.randn_like(out)
                    backward = lambda: torch.autograd.grad(out, (q, k, v), grad, retain_graph=True)
                    bwd[name][str(n)] = cuda_ms(backward, warmup, iters)
            except RuntimeError as error:
                print(f"torch_baseline: {name} at n={n} unavailable: {error}", file=sys.stderr)
            del q, k, v
            torch.cuda.empty_cache()
    return {"flash-fwd": fwd, "flash-bwd": bwd}


def alibi_slopes(heads):
    """The ALiBi slopes of @webattn/linear-attn's alibiSlopes, for a power-of-two head count."""
    return [2 ** (-8 * (h + 1) / heads) for h in range(heads)]


def lightning_baselines(sizes, warmup, iters, head_counts=(16, 32), dim=128):
    """fla's chunked simple GLA with a per-head constant log decay -slope_h: lightning attention."""
    import torch

    try:
        from fla.ops.simple_gla import chunk_simple_gla
    except ImportError as error:
        print(f"torch_baseline: fla not importable, no lightning baselines ({error})", file=sys.stderr)
        return {}
    import fla

    name = f"fla {getattr(fla, '__version__', '?')} chunk_simple_gla (Triton)"
    tables = {}
    for heads in head_counts:
        fwd, bwd = {}, {}
        log_decay = -torch.tensor(alibi_slopes(heads), device="cuda", dtype=torch.float32)
        for n in sizes:
            shape = (1, n, heads, dim)
            q = torch.randn(shape, device="cuda", dtype=torch.float16, requires_grad=True)
            k = torch.randn(shape, device="cuda", dtype=torch.float16, requires_grad=True)
            v = torch.randn(shape, device="cuda", dtype=torch.float16, requires_grad=True)

            def forward():
                # Newer fla takes the constant decay as g_gamma [H]; older ones only a per-token g.
                try:
                    return chunk_simple_gla(q, k, v, g_gamma=log_decay, scale=dim**-0.5)[0]
                except TypeError:
                    g = log_decay.expand(1, n, heads).contiguous()
                    return chunk_simple_gla(q, k, v, g=g, scale=dim**-0.5)[0]

            try:
                fwd[str(n)] = cuda_ms(forward, warmup, iters)
                out = forward()
                grad = torch.randn_like(out) * 0.1
                backward = lambda: torch.autograd.grad(out, (q, k, v), grad, retain_graph=True)
                bwd[str(n)] = cuda_ms(backward, warmup, iters)
            except (RuntimeError, TypeError) as error:
                print(f"torch_baseline: {name} at h={heads} n={n} unavailable: {error}", file=sys.stderr)
            del q, k, v
            torch.cuda.empty_cache()
        tables[f"linear-lightning-fwd-h{heads}"] = {name: fwd}
        tables[f"linear-lightning-bwd-h{heads}"] = {name: bwd}
    return tables


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True, help="JSON file to write")
    parser.add_argument("--sizes", default="4096,8192,16384,32768,65536", help="attention sequence lengths")
    parser.add_argument("--matmul-sizes", default="1024,2048,4096,8192", help="square matmul sizes")
    parser.add_argument("--iters", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument(
        "--fla-path",
        help="directory holding an fla package (e.g. a flash-linear-attention checkout) to import from",
    )
    args = parser.parse_args()
    if args.fla_path:
        sys.path.insert(0, args.fla_path)
    import torch

    if not torch.cuda.is_available():
        sys.exit("torch_baseline: no CUDA device; these baselines are for the GPU machine")
    parse = lambda s: [int(x) for x in s.split(",") if x]
    tables = {"matmul": matmul_baselines(parse(args.matmul_sizes), args.warmup, args.iters)}
    tables.update(sdpa_baselines(parse(args.sizes), args.warmup, args.iters))
    tables.update(lightning_baselines(parse(args.sizes), args.warmup, args.iters))
    source = f"PyTorch {torch.__version__} on {torch.cuda.get_device_name()}"
    with open(args.out, "w") as f:
        json.dump({"source": source, "tables": tables}, f, indent=2)
    print(f"torch_baseline: wrote {args.out} ({source})")


if __name__ == "__main__":
    main()
