#!/usr/bin/env bash
# Installs libtorch for adapters/torch (crate deepnode-torch) into .libtorch/ (git-ignored),
# and the text data its tests train on (Debian's `fortunes`). Idempotent: a fast no-op when
# both are present.
#
# tch 0.26 expects torch 2.13.0. libtorch's own download site is not reachable from every
# build machine (tch's `download-libtorch` feature fails there and leaves a partial directory
# that breaks later builds), so this takes the headers and shared libraries out of the PyPI
# wheels instead: torch (CPU and CUDA code in one wheel) plus the two CUDA runtime libraries
# libtorch.so links against. No GPU or driver is needed to build or to run on the CPU.
set -euo pipefail
cd "$(dirname "$0")/.."
dest=.libtorch
torch_version=2.13.0
marker="$dest/.installed-$torch_version"

sudo_cmd=()
[ "$(id -u)" = 0 ] || ! command -v sudo >/dev/null || sudo_cmd=(sudo)

# Text shards for the TEXT encoder's training test; /usr/share/common-licenses is the fallback.
if command -v apt-get >/dev/null && [ ! -d /usr/share/games/fortunes ]; then
  echo "libtorch.sh: apt-get install fortunes"
  DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq fortunes >/dev/null \
    || { "${sudo_cmd[@]}" apt-get update -qq \
      && DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq fortunes >/dev/null; } \
    || echo "libtorch.sh: fortunes not installed; tests fall back to /usr/share/common-licenses" >&2
fi

[ -f "$marker" ] && exit 0

echo "libtorch.sh: torch $torch_version from PyPI wheels into $dest/"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.11 \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_25_x86_64 \
  --platform manylinux_2_17_x86_64 -d "$work" \
  "torch==$torch_version" "nvidia-cuda-runtime==13.0.96" "nvidia-cuda-cupti==13.0.85"
rm -rf "$dest"
mkdir -p "$dest/lib"
python3 - "$work" "$dest" <<'PY'
import os, shutil, sys, zipfile
work, dest = sys.argv[1], sys.argv[2]
libs = {"libtorch_cpu.so", "libc10.so", "libgomp.so.1", "libtorch.so", "libcudart.so.13",
        "libcupti.so.13"}
found = set()
for wheel in sorted(os.listdir(work)):
    if not wheel.endswith(".whl"):
        continue
    with zipfile.ZipFile(os.path.join(work, wheel)) as z:
        for name in z.namelist():
            base = os.path.basename(name)
            if name.startswith("torch/include/") and not name.endswith("/"):
                out = os.path.join(dest, "include", name[len("torch/include/"):])
            elif base in libs and "/lib" in "/" + os.path.dirname(name):
                out = os.path.join(dest, "lib", base)
                found.add(base)
            else:
                continue
            os.makedirs(os.path.dirname(out), exist_ok=True)
            with z.open(name) as src, open(out, "wb") as dst:
                shutil.copyfileobj(src, dst)
missing = libs - found
if missing:
    sys.exit(f"libtorch.sh: missing from the wheels: {sorted(missing)}")
PY
touch "$marker"
echo "libtorch.sh: done ($(du -sh "$dest" | cut -f1))"
