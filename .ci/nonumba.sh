#!/usr/bin/env bash
# The whole test suite in a fresh virtual environment WITHOUT Numba, as on a platform
# where Numba cannot be installed: fastgru must install, choose its Cython backend by
# itself (FASTGRU_BACKEND=auto) and pass.
#
# Numba is left out the way the README documents: install fastgru's other runtime
# dependencies, then fastgru itself with --no-deps (its extension is built from source).
# Set NONUMBA_VENV to keep the environment somewhere (it is recreated); else a temporary
# one is used and removed.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
export PIP_DISABLE_PIP_VERSION_CHECK=1 PYTHONDONTWRITEBYTECODE=1
PYTHON="${PYTHON:-python3}"

WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
VENV="${NONUMBA_VENV:-$WORK/venv}"
rm -rf "$VENV"
"$PYTHON" -m venv "$VENV"
PY="$VENV/bin/python"

echo "--- installing fastgru without numba into $VENV"
"$PY" -m pip install -q numpy pytest pytest-benchmark hypothesis
"$PY" -m pip install -q --no-deps "$ROOT"

# Everything below runs outside the checkout, so that `import fastgru` is the
# installed package (with its compiled extension), not the source tree.
cd "$WORK"
if "$PY" -c "import numba" 2>/dev/null; then
    echo "numba is importable in the Numba-free environment" >&2
    exit 1
fi
FASTGRU_BACKEND=auto "$PY" - <<'EOF'
import warnings

import fastgru

with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    chosen = fastgru.get_backend()
print(f"fastgru {fastgru.__file__}: backend {chosen!r}, available {fastgru.available_backends()}")
assert chosen == "cython", f"expected the cython backend without numba, got {chosen!r}"
assert any("numba" in str(w.message) for w in caught), "no warning said that numba was missing"
assert "site-packages" in fastgru.__file__, "tests would not run against the installed package"
EOF

echo "--- test suite without numba"
FASTGRU_BACKEND=auto "$PY" -m pytest -q -x -p no:cacheprovider "$ROOT/tests"
