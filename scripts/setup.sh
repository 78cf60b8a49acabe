#!/usr/bin/env bash
# Everything a fresh Debian/Ubuntu machine needs before `pnpm bench` and `pnpm test`: SwiftShader's
# Vulkan driver (for machines without a GPU), pnpm through corepack, and the locked dependencies.
set -euo pipefail
cd "$(dirname "$0")/.."
SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
export COREPACK_ENABLE_DOWNLOAD_PROMPT=0

bash scripts/install-system-deps.sh

$SUDO corepack enable
if ! pnpm --version >/dev/null 2>&1; then
  # Older corepacks refuse registries that serve pnpm without npm's signatures; the pinned version
  # in package.json still decides what is installed.
  COREPACK_INTEGRITY_KEYS=0 pnpm --version >/dev/null
fi
echo "setup: pnpm $(pnpm --version)"
pnpm install --frozen-lockfile
