#!/usr/bin/env bash
# Debian/Ubuntu packages webattn needs on a machine without a GPU: Debian's chromium ships
# SwiftShader's Vulkan driver (/usr/lib/chromium/vk_swiftshader_icd.json), which dawn.node uses as a
# real WebGPU adapter; libvulkan1 is the loader. Skips the install when both are present.
set -euo pipefail
if [ -f /usr/lib/chromium/vk_swiftshader_icd.json ] && ldconfig -p | grep -q libvulkan.so.1; then
  exit 0
fi
SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends chromium libvulkan1 >/dev/null
