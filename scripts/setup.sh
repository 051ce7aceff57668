#!/usr/bin/env bash
# setup.sh - installs the Debian 12 packages Ringleader needs, if any is missing.
# Idempotent and quick when everything is there. Uses sudo when not root.
set -euo pipefail
pkgs=(gcc clang cmake make pkg-config libnng-dev libmsgpack-dev libyaml-dev check
      libmbedtls-dev libclang-rt-14-dev openssl python3 python3-numpy iproute2
      curl prometheus chromium chromium-driver python3-pil   # the monitor's tests: promtool, a scraper, screenshots
      python3-torch python3-sklearn)   # the Python package's tests and examples (it_python)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "setup: installing ${missing[*]}" >&2
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi
