#!/usr/bin/env bash
# Sets up napari-dem on a fresh Debian/Ubuntu machine: the system libraries a headless
# napari needs (Xvfb, xcb, Mesa), then a virtual environment .venv with torch and the
# package with its test extras. Safe to run again: it only installs what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(xvfb xauth libxcb-icccm4 libxcb-image0 libxcb-keysyms1 libxcb-randr0 libxcb-render-util0
  libxcb-xinerama0 libxcb-xkb1 libxkbcommon-x11-0 libxcb-cursor0 libxcb-shape0 libgl1 libegl1
  libglx-mesa0 libgl1-mesa-dri libfontconfig1 libdbus-1-3)
missing=()
for p in "${APT_PACKAGES[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "setup: installing ${missing[*]}" >&2
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  else
    echo "setup: warning: missing system packages (GUI tests need them): ${missing[*]}" >&2
  fi
fi

# torch's CUDA build with its libraries takes about 6.5 GB in .venv: say so before pip fails
# halfway with "No space left on device" (a disk filled by old clones did exactly that).
free_kb=$(df -Pk . | awk 'NR==2 {print $4}')
if [ "${free_kb:-0}" -lt 8000000 ] && ! [ -x .venv/bin/python ]; then
  echo "setup: warning: only $((free_kb / 1024 / 1024)) GB free here; the environment needs about 7 GB" >&2
fi

PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
export PIP_DISABLE_PIP_VERSION_CHECK=1
# torch first and pinned: the newest build this machine's index holds (a CUDA build that runs on CPU).
.venv/bin/python -c "import torch, torchvision" 2>/dev/null \
  || .venv/bin/pip install -q "torch==2.14.1" "torchvision==0.29.1"
.venv/bin/pip install -q -e ".[testing]"
echo "setup: ready (.venv)" >&2
