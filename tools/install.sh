#!/usr/bin/env bash
# Install the OpenMMLab stack and um_mae into the active Python environment
# (activate a venv/conda env first if you want one).
#
#   bash tools/install.sh                  # pre-training, detection and
#                                          # segmentation (compiles mmcv's ops)
#   bash tools/install.sh --pretrain-only  # pre-training only: mmcv without
#                                          # compiled ops, no mmdet / mmseg
#   bash tools/install.sh --with-ops       # the same as no flag; adds the ops,
#                                          # mmdet and mmseg to a
#                                          # pre-training-only install
#
# It ends with `python tools/check_install.py`: whether mmcv's ops run on CPU
# and on CUDA.
#
# Environment:
#   PYTHON           interpreter to install into (default: python, else
#                    python3)
#   STACK            upstream (default: the pinned OpenMMLab releases) or
#                    onedl (their maintained OneDL fork, requirements/onedl/;
#                    its mmcv always has the ops, so no --pretrain-only)
#   TORCH_INDEX_URL  where to take torch 2.12.1 / torchvision 0.27.1 from when
#                    they are not installed yet, e.g. PyTorch's index of the
#                    CUDA variant your driver runs (default: PyPI). An
#                    installed torch 2.12.1 of any variant is kept.
#   MMCV_WHEEL       a prebuilt mmcv wheel for torch 2.12.1 to use instead of
#                    building from source (default: the first matching one in
#                    ../shared/wheels/, if any); MMCV_WHEEL=none forces the
#                    build from source (about 20 CPU-minutes).
#   FORCE_CUDA=1, TORCH_CUDA_ARCH_LIST, CUDA_HOME, MAX_JOBS
#                    read by mmcv's build: the CUDA ops are built when a GPU
#                    is visible or FORCE_CUDA=1, with the nvcc under CUDA_HOME
#                    (its CUDA major version must be torch's), for the
#                    architectures in TORCH_CUDA_ARCH_LIST (e.g. "8.0;9.0";
#                    default: the visible GPUs').
set -euo pipefail

PY=${PYTHON:-$(command -v python || command -v python3)}
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
REQ=$ROOT/requirements
PIP=("$PY" -m pip install --disable-pip-version-check)

say() { printf '\n[install] %s\n' "$*"; }
die() { printf '\n[install] ERROR: %s\n' "$*" >&2; exit 1; }

OPS=1
for arg in "$@"; do
  case $arg in
    --pretrain-only) OPS=0 ;;
    --with-ops) OPS=1 ;;
    *) die "unknown argument '$arg'; use --pretrain-only or --with-ops" ;;
  esac
done
case ${STACK:=upstream} in
  upstream) STACK_REQ=$REQ ;;
  onedl) STACK_REQ=$REQ/onedl
    [ "$OPS" = 1 ] || die "STACK=onedl has no --pretrain-only (onedl-mmcv is \
always built with its ops); drop the flag or use the upstream stack" ;;
  *) die "unknown STACK=$STACK; use upstream or onedl" ;;
esac
# mmcv's distribution and version, e.g. mmcv 2.1.0 or onedl-mmcv 2.3.6
MMCV_DIST=$(sed -n 's/^\([a-z-]*mmcv\)==.*/\1/p' "$STACK_REQ/mmcv.txt")
MMCV_VERSION=$(sed -n 's/^[a-z-]*mmcv==//p' "$STACK_REQ/mmcv.txt")

command -v "$PY" >/dev/null || die "no interpreter '$PY'; set PYTHON=/path/to/python3.11"
"$PY" - <<'EOF' || die "Python 3.8-3.12 is required (the pinned torch/mmcv pair)"
import sys
sys.exit(0 if (3, 8) <= sys.version_info[:2] <= (3, 12) else 1)
EOF
pkg_version() {  # the installed version of an import name, or nothing
  "$PY" -c "import $1; print($1.__version__)" 2>/dev/null || true
}

say "1/6 build tools, torch 2.12.1 and torchvision 0.27.1"
"${PIP[@]}" -r "$REQ/build.txt" -c "$REQ/constraints.txt"
INDEX=()
[ -z "${TORCH_INDEX_URL:-}" ] || INDEX=(--index-url "$TORCH_INDEX_URL")
dist_version() {  # what pip installed, e.g. 2.12.1 (PyPI) or 2.12.1+cu126
  "$PY" -c "import importlib.metadata as m; print(m.version('$1'))" \
    2>/dev/null || true
}
label() { case $1 in *+*) echo "${1#*+}" ;; esac; }  # 2.12.1+cu130 -> cu130
torch=$(dist_version torch)
if [ "${torch%%+*}" = 2.12.1 ]; then
  echo "keeping the installed torch $torch"
  if [ "$(dist_version torchvision | cut -d+ -f1)" != 0.27.1 ]; then
    # a torch from another index than PyPI (+cu126, +cpu) needs the
    # torchvision of that index
    [ -z "$(label "$torch")" ] || [ -n "${TORCH_INDEX_URL:-}" ] || die "torch \
$torch is installed without torchvision 0.27.1: set TORCH_INDEX_URL to the \
index torch came from so that torchvision of the same variant is installed"
    "${PIP[@]}" "${INDEX[@]}" torchvision==0.27.1 -c "$REQ/constraints.txt"
  fi
else
  [ -z "$torch" ] || echo "replacing torch $torch with 2.12.1 (the version mmcv is built against here)"
  "${PIP[@]}" "${INDEX[@]}" -r "$REQ/torch.txt" -c "$REQ/constraints.txt"
fi
# Both report their build (2.12.1+cu130, 0.27.1+cu130): a torchvision of
# another variant fails at its first operator.
torch=$(pkg_version torch)
vision=$(pkg_version torchvision)
[ "${vision%%+*}" = 0.27.1 ] && [ "$(label "$torch")" = "$(label "$vision")" ] \
  || die "torchvision $vision does not match torch $torch: install \
torchvision 0.27.1 of the same variant (pip install torchvision==0.27.1 \
--index-url <the index torch came from>)"

say "2/6 $(grep -v '^#' "$STACK_REQ/pretrain.txt" | tr '\n' ' ')"
# mmpretrain does not declare mmcv; mmcv imports mmengine at run time. Its
# pure-Python requirements come first so that the build below can use
# --no-deps.
"${PIP[@]}" -r "$STACK_REQ/pretrain.txt" addict packaging Pillow pyyaml yapf \
  opencv-python -c "$REQ/constraints.txt"

mmcv_is() {  # mmcv_is MODULES: mmcv $MMCV_VERSION imports with MODULES
  "$PY" -c "import mmcv, $1; assert mmcv.__version__ == '$MMCV_VERSION'" \
    >/dev/null 2>&1
}
if [ "$OPS" = 0 ]; then
  say "3/6 mmcv $MMCV_VERSION without compiled ops (pre-training only)"
  if mmcv_is mmcv.cnn; then
    echo "mmcv $MMCV_VERSION is already installed"
  else
    "${PIP[@]}" -r "$REQ/mmcv-lite.txt" -c "$REQ/constraints.txt"
  fi
else
  say "3/6 $MMCV_DIST $MMCV_VERSION with compiled ops"
  # kept when its ops run on CPU and on the visible GPU (FORCE_CUDA=1: are
  # compiled with CUDA); otherwise reinstalled
  mmcv_ready() {
    mmcv_is mmcv.ops && "$PY" "$ROOT/tools/check_install.py" >/dev/null 2>&1
  }
  if mmcv_ready; then
    echo "$MMCV_DIST $MMCV_VERSION with working ops is already installed"
  else
    # mmcv-lite owns the same mmcv/ folder: remove it before installing mmcv
    "$PY" -m pip uninstall -y mmcv-lite >/dev/null 2>&1 || true
    wheel=${MMCV_WHEEL:-}
    if [ -z "$wheel" ]; then
      wheel=$(ls "$ROOT"/../shared/wheels/"${MMCV_DIST//-/_}-$MMCV_VERSION"-*.whl \
        2>/dev/null | head -n1 || true)
    fi
    if [ "$wheel" != none ] && [ -n "$wheel" ] && [ "$(pkg_version torch | cut -d+ -f1)" = 2.12.1 ]; then
      echo "using prebuilt wheel $wheel"
      "${PIP[@]}" --no-deps --force-reinstall "$wheel" || true
    fi
    if ! mmcv_ready; then
      # stops here, naming the fix, when CUDA ops are wanted without a
      # matching nvcc
      "$PY" "$ROOT/tools/check_install.py" --before-build || exit 1
      echo "building $MMCV_DIST $MMCV_VERSION from source (about 20 CPU-minutes)"
      MMCV_WITH_OPS=1 MAX_JOBS=${MAX_JOBS:-$(nproc)} \
        "${PIP[@]}" --no-build-isolation --no-binary "$MMCV_DIST" --no-deps \
        --force-reinstall --no-cache-dir -r "$STACK_REQ/mmcv.txt"
    fi
  fi
  if ! err=$("$PY" -c "import mmcv.ops" 2>&1); then
    die "$MMCV_DIST $MMCV_VERSION is installed without its compiled ops ('import mmcv.ops' fails):
$err
Reinstall it from source: $PY -m pip install --no-build-isolation --no-binary $MMCV_DIST --force-reinstall $MMCV_DIST==$MMCV_VERSION"
  fi
fi

if [ "$OPS" = 1 ]; then
  say "4/6 $(grep -v '^#' "$STACK_REQ/dense.txt" | tr '\n' ' ')"
  "${PIP[@]}" -r "$STACK_REQ/dense.txt" -c "$REQ/constraints.txt"
else
  say "4/6 skipped: mmdet / mmseg (need the compiled ops; --with-ops adds them)"
fi

say "5/6 um_mae (editable) and test requirements"
"${PIP[@]}" --no-deps --no-build-isolation -e "$ROOT"
"${PIP[@]}" -r "$REQ/tests.txt" -c "$REQ/constraints.txt"

say "6/6 import check"
"$PY" - "$OPS" <<'EOF' || die "the stack does not import; see the error above"
import sys
import mmpretrain.models  # noqa
import torch, torchvision, um_mae  # noqa
if sys.argv[1] == '1':
    import mmcv.ops, mmdet.models, mmseg.models  # noqa
print('torch', torch.__version__, '| torchvision', torchvision.__version__,
      '| um_mae', um_mae.__version__)
EOF
if [ "$OPS" = 1 ]; then
  "$PY" "$ROOT/tools/check_install.py" || die "mmcv's ops do not run; see above"
else
  echo "pre-training only: mmdet / mmseg configs need bash tools/install.sh --with-ops"
fi
say "done"
