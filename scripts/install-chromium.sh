#!/usr/bin/env bash
# install-chromium.sh: make Debian's chromium available for the browser test
# (internal/browsertest). Does nothing when chromium is on PATH already;
# otherwise installs it with apt-get, which needs root. Quiet unless it fails.
# Prints the path of the browser on success.
set -euo pipefail

if path=$(command -v chromium 2>/dev/null); then
  echo "$path"
  exit 0
fi
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
  echo "install-chromium: chromium is not on PATH and this is not a root Debian shell;" >&2
  echo "install-chromium: run as root: apt-get install --no-install-recommends chromium fonts-liberation" >&2
  exit 1
fi
echo "install-chromium: installing chromium with apt-get" >&2
export DEBIAN_FRONTEND=noninteractive
log=$(mktemp)
trap 'rm -f "$log"' EXIT
# fonts-liberation: without a font the screenshot shows boxes instead of text.
if ! { apt-get update -qq && apt-get install -y -qq --no-install-recommends chromium fonts-liberation; } >"$log" 2>&1; then
  cat "$log" >&2
  echo "install-chromium: apt-get failed" >&2
  exit 1
fi
command -v chromium
