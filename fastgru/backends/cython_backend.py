"""Cython backend: fastgru's engine (``_engine``) on the C kernels of
``fastgru_ext._gru``, the twins of the Numba backend's (same pieces, same
product chains, same exp: the same bits).

The extension's product kernels are compiled for several instruction sets
(``fastgru_ext/_product.h``); the best one this machine runs is chosen here, once,
at import. ``FASTGRU_ISA=baseline|avx2|avx512`` caps the choice (a cap above what
the machine runs warns and uses the best it does run).
"""
import os
import warnings

from fastgru_ext import _gru

from . import _engine, _layout

if ((_gru.PROJECT_ROWS, _gru.K_BLOCK, _gru.SUM_GROUPS)
        != (_layout.PROJECT_ROWS, _layout.K_BLOCK, _layout.SUM_GROUPS)):
    raise ImportError("fastgru_ext._gru was built for another fastgru: rebuild it "
                      "(pip install -e . from the checkout)")

ISA_LEVELS = _gru.ISA_LEVELS   # lowest first
ISA_ENV = "FASTGRU_ISA"


def choose_isa(cap, runs_here):
    """The instruction set to use: the highest of ``runs_here`` at or below ``cap``
    (a name of ISA_LEVELS, or "" for no cap); warns when the cap cannot be met."""
    cap = cap.strip().lower()
    if cap and cap not in ISA_LEVELS:
        raise ValueError(f"{ISA_ENV} must be one of {', '.join(ISA_LEVELS)} (or unset), "
                         f"got {cap!r}")
    allowed = ISA_LEVELS[:ISA_LEVELS.index(cap) + 1] if cap else ISA_LEVELS
    chosen = [name for name in allowed if name in runs_here][-1]
    if cap and chosen != cap:
        warnings.warn(f"fastgru: {ISA_ENV}={cap} asks for instructions this machine lacks; "
                      f"the cython backend uses {chosen!r} (this machine runs "
                      f"{', '.join(runs_here)})", RuntimeWarning, stacklevel=2)
    return chosen


def isa():
    """The instruction set of the product kernels in use ("baseline", "avx2", "avx512")."""
    return _gru.isa()


def isa_info():
    """What show_config reports: the set in use, those compiled and those this CPU runs."""
    return {"in_use": _gru.isa(), "fused_multiply_add": _gru.isa_fused(),
            "compiled": _gru.isa_compiled(), "runs_here": _gru.isa_runs_here(),
            "cap": os.environ.get(ISA_ENV) or None}


_gru.use_isa(choose_isa(os.environ.get(ISA_ENV, ""), _gru.isa_runs_here()))

KERNELS = _engine.Kernels(_gru.project_team, _gru.forward_team, _gru.backward_team,
                          _gru.dx_team, _gru.sums_team, _gru.step)
forward, backward, step = _engine.entry_points(KERNELS)
prepare_step = _engine.prepare_step


def linear(x, w, b, out):
    """Same contract as ``numpy_backend.linear``."""
    _engine.linear(KERNELS, x, w, b, out)
