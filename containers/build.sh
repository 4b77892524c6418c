#!/usr/bin/env bash
# Build an Apptainer image from containers/<name>.def:   containers/build.sh [nph|synthseg] [OUTPUT.sif]
#
# Settings (environment): APPTAINER (the binary, default apptainer), APPTAINER_BUILD_FLAGS (default --fakeroot;
# e.g. "--remote" or "" when building as root), TORCH_CUDA (cu128), TORCH_SPEC (the whole torch requirement;
# default: the lock's torch from the TORCH_CUDA wheel index).
# Runs from the repository root, because the .def files' %files paths are relative to it.
set -euo pipefail

NAME="${1:-nph}"
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DEF="$ROOT/containers/$NAME.def"
OUT="${2:-$ROOT/containers/$NAME.sif}"
APPTAINER="${APPTAINER:-apptainer}"
read -r -a FLAGS <<<"${APPTAINER_BUILD_FLAGS---fakeroot}"
# TORCH_CUDA: the wheels' CUDA variant (cu128: driver >= 525; cu130: driver >= 580, no Volta; cpu: no GPU).
TORCH_CUDA="${TORCH_CUDA:-cu128}"
TORCH_SPEC="${TORCH_SPEC:-torch==2.14.1 torchvision==0.29.1 --index-url https://download.pytorch.org/whl/$TORCH_CUDA}"

if ! command -v "$APPTAINER" >/dev/null 2>&1; then
    echo "containers/build.sh: error: '$APPTAINER' not found. Install Apptainer (https://apptainer.org/docs/admin/main/installation.html)" \
        "or set APPTAINER=/path/to/apptainer; build on a machine that has it and copy the .sif." >&2
    exit 2
fi
if [[ ! -f "$DEF" ]]; then
    known=("$ROOT"/containers/*.def)
    known=("${known[@]##*/}")
    echo "containers/build.sh: error: $DEF: no such definition (known: ${known[*]%.def})" >&2
    exit 2
fi

ARGS=()
if [[ "$NAME" == nph ]]; then
    VERSION="$(sed -n 's/^version = "\(.*\)"/\1/p' "$ROOT/pyproject.toml" | head -n 1)"
    COMMIT="$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)"
    ARGS=(--build-arg "TORCH_SPEC=$TORCH_SPEC" --build-arg "NPH_VERSION=$VERSION" --build-arg "GIT_COMMIT=$COMMIT")
fi
cd "$ROOT"
echo "building $OUT from $DEF: $APPTAINER build ${FLAGS[*]} ${ARGS[*]}" >&2
"$APPTAINER" build "${FLAGS[@]}" "${ARGS[@]}" "$OUT" "$DEF"
echo "built $OUT; check it with: $APPTAINER test $OUT" >&2
