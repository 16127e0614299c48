#!/usr/bin/env bash
# System tools the interop tests need: DCMTK (findscu, dump2dcm, wlmscpfs) from Debian.
set -euo pipefail
if ! command -v findscu >/dev/null 2>&1; then
  SUDO=""
  if [ "$(id -u)" != "0" ]; then SUDO="sudo"; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq dcmtk >/dev/null
fi
# curl and openssl: the TLS tests use them as independent TLS clients (docs/security.md).
if ! command -v curl >/dev/null 2>&1 || ! command -v openssl >/dev/null 2>&1; then
  SUDO=""
  if [ "$(id -u)" != "0" ]; then SUDO="sudo"; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq curl openssl >/dev/null
fi
echo "DCMTK tools: $(command -v findscu) $(command -v wlmscpfs) $(command -v dump2dcm)"
# curl: docs/auth.md's walk-through is run as written (tests/integration/security/test_docs_auth.py).
if ! command -v curl >/dev/null 2>&1; then
  SUDO=""
  if [ "$(id -u)" != "0" ]; then SUDO="sudo"; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq curl >/dev/null
fi
# Chromium and CJK fonts for the web desk's browser tests (tests/integration/web), driven by
# Playwright for Python; Playwright's own browser download is not used.
if ! command -v chromium >/dev/null 2>&1 || [ ! -d /usr/share/fonts/opentype/noto ]; then
  SUDO=""
  if [ "$(id -u)" != "0" ]; then SUDO="sudo"; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium fonts-noto-cjk >/dev/null
fi
echo "Chromium: $(command -v chromium)"
