#!/usr/bin/env bash
# System tools the interop and browser tests need, from Debian: DCMTK (findscu, dump2dcm,
# wlmscpfs), and Chromium with CJK fonts for the web desk tests (driven by Playwright for Python,
# which cannot download its own browser here; tests use /usr/bin/chromium).
set -euo pipefail
SUDO=""
if [ "$(id -u)" != "0" ]; then SUDO="sudo"; fi
PACKAGES=()
command -v findscu >/dev/null 2>&1 || PACKAGES+=(dcmtk)
command -v chromium >/dev/null 2>&1 || PACKAGES+=(chromium)
[ -d /usr/share/fonts/opentype/noto ] || PACKAGES+=(fonts-noto-cjk)
if [ "${#PACKAGES[@]}" -gt 0 ]; then
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${PACKAGES[@]}" >/dev/null
fi
echo "DCMTK tools: $(command -v findscu) $(command -v wlmscpfs) $(command -v dump2dcm)"
echo "Chromium: $(command -v chromium)"
