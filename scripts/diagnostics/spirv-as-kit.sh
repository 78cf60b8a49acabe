#!/usr/bin/env bash
# Puts a SPIR-V assembler that knows cooperative matrices into .gpu-kit/spirv, for
# scripts/diagnostics/pipeline-stats.py on the GPU machine: Debian trixie's spirv-tools (bookworm's
# 2023.1 predates SPV_KHR_cooperative_matrix) with the C and C++ runtimes it was built against, run
# through their own loader so that it works on an older system:
#   S=$PWD/.gpu-kit/spirv; python3 scripts/diagnostics/pipeline-stats.py DIR \
#     --spirv-as "$S/ld-linux-x86-64.so.2 --library-path $S $S/spirv-as"
# Run here (Debian, with apt) before `pnpm gpu:bundle`; the packages are only downloaded, not installed.
set -euo pipefail
cd "$(dirname "$0")/../.."
work=$(mktemp -d)
list=/etc/apt/sources.list.d/webattn-trixie.list
trap 'rm -rf "$work"; rm -f "$list"' EXIT
SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
echo "deb http://deb.debian.org/debian trixie main" | $SUDO tee "$list" >/dev/null
# Only trixie's index is read, so nothing else on the system changes.
$SUDO apt-get update -qq -o Dir::Etc::sourcelist="$list" -o Dir::Etc::sourceparts=- -o APT::Get::List-Cleanup=0
(cd "$work" && for p in spirv-tools libc6 libstdc++6 libgcc-s1; do
  apt-get download -qq "$p/trixie"
done)
$SUDO rm -f "$list"
$SUDO apt-get update -qq
for deb in "$work"/*.deb; do dpkg -x "$deb" "$work/root"; done
mkdir -p .gpu-kit/spirv
r="$work/root"
cp "$r/usr/bin/spirv-as" "$r/usr/lib64/ld-linux-x86-64.so.2" .gpu-kit/spirv/
for lib in libc.so.6 libm.so.6 libstdc++.so.6 libgcc_s.so.1; do
  cp -L "$(find "$r" -name "$lib" | head -n 1)" .gpu-kit/spirv/
done
S=$PWD/.gpu-kit/spirv
"$S/ld-linux-x86-64.so.2" --library-path "$S" "$S/spirv-as" --version | head -n 1
