#!/usr/bin/env bash
# Install the pinned OpenMMLab stack and um_mae into the active Python
# environment (activate a venv/conda env first if you want one).
#
#   bash tools/install.sh
#
# Environment:
#   PYTHON       interpreter to install into (default: python, else python3)
#   MMCV_WHEEL   a prebuilt mmcv-2.1.0 wheel for torch 2.12.1 to use instead
#                of building from source (default: the first one found in
#                ../shared/wheels/, if any). Without one, mmcv is compiled
#                from source: about 10-12 minutes on 2 cores. MMCV_WHEEL=none
#                forces the build from source.
set -euo pipefail

PY=${PYTHON:-$(command -v python || command -v python3)}
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
REQ=$ROOT/requirements
PIP=("$PY" -m pip install --disable-pip-version-check)

say() { printf '\n[install] %s\n' "$*"; }
die() { printf '\n[install] ERROR: %s\n' "$*" >&2; exit 1; }

command -v "$PY" >/dev/null || die "no interpreter '$PY'; set PYTHON=/path/to/python3.11"
"$PY" - <<'EOF' || die "Python 3.8-3.11 is required (the pinned torch/mmcv pair)"
import sys
sys.exit(0 if (3, 8) <= sys.version_info[:2] <= (3, 12) else 1)
EOF

say "1/5 build tools and torch 2.12.1 + torchvision 0.27.1"
"${PIP[@]}" -r "$REQ/build.txt" -r "$REQ/torch.txt" -c "$REQ/constraints.txt"

say "2/5 mmengine 0.10.7, then mmcv 2.1.0 with compiled ops"
# mmcv imports mmengine: install it (and mmcv's pure-Python needs) first so
# that the ops check below means what it says.
"${PIP[@]}" mmengine==0.10.7 addict packaging Pillow pyyaml yapf opencv-python \
  -c "$REQ/constraints.txt"
mmcv_ok() {
  "$PY" -c "import mmcv, mmcv.ops; assert mmcv.__version__ == '2.1.0'" \
    >/dev/null 2>&1
}
if mmcv_ok; then
  echo "mmcv 2.1.0 with ops is already installed"
else
  wheel=${MMCV_WHEEL:-}
  if [ -z "$wheel" ]; then
    wheel=$(ls "$ROOT"/../shared/wheels/mmcv-2.1.0-*.whl 2>/dev/null | head -n1 || true)
  fi
  torch_ver=$("$PY" -c "import torch; print(torch.__version__.split('+')[0])")
  if [ "$wheel" != none ] && [ -n "$wheel" ] && [ "$torch_ver" = "2.12.1" ]; then
    echo "using prebuilt wheel $wheel"
    "${PIP[@]}" --no-deps --force-reinstall "$wheel" || true
  fi
  if ! mmcv_ok; then
    echo "building mmcv 2.1.0 from source (about 10-12 minutes on 2 cores)"
    MMCV_WITH_OPS=1 MAX_JOBS=${MAX_JOBS:-$(nproc)} \
      "${PIP[@]}" --no-build-isolation --no-binary mmcv --no-deps \
      --force-reinstall --no-cache-dir -r "$REQ/mmcv.txt"
  fi
fi
if ! err=$("$PY" -c "import mmcv.ops" 2>&1); then
  die "mmcv 2.1.0 is installed without its compiled ops ('import mmcv.ops' fails):
$err
Reinstall it from source: $PY -m pip install --no-build-isolation --no-binary mmcv --force-reinstall mmcv==2.1.0"
fi

say "3/5 mmengine, mmpretrain, mmdet, mmsegmentation and friends"
"${PIP[@]}" -r "$REQ/runtime.txt" -c "$REQ/constraints.txt"

say "4/5 um_mae (editable) and test requirements"
"${PIP[@]}" --no-deps --no-build-isolation -e "$ROOT"
"${PIP[@]}" -r "$REQ/tests.txt" -c "$REQ/constraints.txt"

say "5/5 import check of the whole stack"
"$PY" - <<'EOF' || die "the stack does not import; see the error above"
import mmcv.ops, mmdet.models, mmpretrain.models, mmseg.models  # noqa
import torch, torchvision, um_mae  # noqa
print('torch', torch.__version__, '| torchvision', torchvision.__version__,
      '| um_mae', um_mae.__version__)
EOF
say "done"
