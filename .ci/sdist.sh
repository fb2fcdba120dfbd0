#!/usr/bin/env bash
# Build the sdist and the wheel (python -m build), install the sdist in a fresh virtual
# environment (its extension compiled from the sdist's sources, as a user's pip would) and
# run the sdist's own tests from outside the tree, so that they import the installed package.
# Usage: bash .ci/sdist.sh [WORKDIR]   (default: a temporary folder, removed afterwards)
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
export PIP_DISABLE_PIP_VERSION_CHECK=1 PYTHONDONTWRITEBYTECODE=1
PYTHON="${PYTHON:-python3}"
if [[ $# -ge 1 ]]; then
    WORK="$1"; rm -rf "$WORK"; mkdir -p "$WORK"
else
    WORK="$(mktemp -d)"; trap 'rm -rf "$WORK"' EXIT
fi

echo "--- python -m build"
"$PYTHON" -m build --outdir "$WORK/dist" "$ROOT" > "$WORK/build.log" 2>&1 || { cat "$WORK/build.log"; exit 1; }
ls -l "$WORK/dist"
SDIST=$(ls "$WORK"/dist/fastgru-*.tar.gz)
tar tzf "$SDIST" > "$WORK/sdist.txt"   # a file, not a pipe: grep -q would cut tar short
if grep -E '\.(c|so)$' "$WORK/sdist.txt"; then
    echo "the sdist ships generated or compiled files (above)" >&2; exit 1
fi
for f in LICENSE CHANGELOG.md tests/conftest.py tests/helpers.py tests/naive.py \
         tests/data/golden_l1_float32.npz; do
    grep -q "^fastgru-[^/]*/$f\$" "$WORK/sdist.txt" || { echo "the sdist lacks $f" >&2; exit 1; }
done

echo "--- installing the sdist in a fresh venv"
"$PYTHON" -m venv "$WORK/venv"
PY="$WORK/venv/bin/python"
"$PY" -m pip install -q "$SDIST[test]"
mkdir -p "$WORK/src" "$WORK/run"
tar xzf "$SDIST" -C "$WORK/src"

echo "--- the sdist's tests (pytest -m quick), run outside the tree"
cd "$WORK/run"
"$PY" - <<'PYEOF'
import fastgru
fastgru.show_config()
assert "site-packages" in fastgru.__file__, f"not the installed fastgru: {fastgru.__file__}"
assert "cython" in fastgru.available_backends(), "the sdist's extension was not built"
PYEOF
"$PY" -m pytest -q -p no:cacheprovider -m quick "$WORK"/src/fastgru-*/tests
