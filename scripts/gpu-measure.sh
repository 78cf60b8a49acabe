#!/usr/bin/env bash
# Runs the measurements the issues' closing notes need, on the GPU machine, from the bundle that
# `pnpm gpu:bundle` builds (see ../shared/gpu/README.md). Each part writes Markdown and JSON under
# $OUT (or ./out/gpu), and is cut at its own time limit so one slow table cannot take the rest of
# the session; the bench rewrites its JSON after every table, so a part cut short keeps what it
# measured. Usage, from the repository root on the GPU machine:
#   source .gpu-kit/setup.sh && bash scripts/gpu-measure.sh verify nsa linear
# Parts: verify, torch, nsa, linear, mla, flash (the order given is the order run; torch, first,
# gives the later benches PyTorch's columns). The tensor-core
# tables need an adapter with subgroup matrices; elsewhere the bench refuses --tier subgroup-matrix.
set -u
out="${OUT:-out/gpu}"
mkdir -p "$out"
# WEBATTN overrides the CLI (e.g. "node packages/bench/dist/cli.js" to try the script here).
read -r -a webattn <<<"${WEBATTN:-node .gpu-kit/webattn.mjs}"

# part NAME SECONDS COMMAND...: runs COMMAND with a limit, stdout to NAME.md; how it ended and the
# end of its stderr go to summary.txt (the device returns at most 8 files: two per part, plus this).
part() {
  local name=$1 limit=$2
  shift 2
  local start=$SECONDS
  local errors
  errors=$(mktemp)
  timeout "$limit" "$@" >"$out/$name.md" 2>"$errors"
  local rc=$?
  {
    echo "$name: exit $rc after $((SECONDS - start)) s (limit $limit s)"
    grep -v '^Warning: vkCreateInstance\|CheckVkSuccessImpl\|^$' "$errors" | tail -n 20 | sed 's/^/  /'
  } | tee -a "$out/summary.txt"
  rm -f "$errors"
}

tensor_core=(--tier subgroup-matrix --iters 3 --warmup 1 --no-progress)
# PyTorch's columns, once the torch part has written them.
torch_columns() { if [ -s "$out/torch.json" ]; then echo --torch "$out/torch.json"; fi; }
for name in "$@"; do
  case "$name" in
    torch)
      # fla from the kit (pnpm gpu:bundle --fla CHECKOUT) where the machine's Python lacks it.
      fla=()
      if [ -d .gpu-kit/python/fla ]; then fla=(--fla-path .gpu-kit/python); fi
      part torch 300 python3 .gpu-kit/torch_baseline.py --out "$out/torch.json" --iters 5 --warmup 2 "${fla[@]}"
      ;;
    verify) part verify 420 "${webattn[@]}" verify all ;;
    nsa) part nsa 420 "${webattn[@]}" bench nsa $(torch_columns) --sizes 16384,65536 "${tensor_core[@]}" --json "$out/nsa.json" ;;
    linear) part linear 420 "${webattn[@]}" bench linear $(torch_columns) --sizes 4096,16384,65536 "${tensor_core[@]}" --json "$out/linear.json" ;;
    mla) part mla 300 "${webattn[@]}" bench mla --dtype f16 --iters 3 --warmup 1 --no-progress --json "$out/mla.json" ;;
    flash) part flash 300 "${webattn[@]}" bench flash $(torch_columns) --sizes 4096,16384,65536 "${tensor_core[@]}" --json "$out/flash.json" ;;
    *)
      echo "gpu-measure: unknown part '$name' (verify, torch, nsa, linear, mla, flash)" >&2
      exit 2
      ;;
  esac
done
