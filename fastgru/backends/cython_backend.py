"""Cython backend: fastgru's engine (``_engine``) on the C kernels of
``fastgru_ext._gru``, the twins of the Numba backend's (same pieces, same
product chains, same exp: the same bits)."""
from fastgru_ext import _gru

from . import _engine, _layout

if ((_gru.PROJECT_ROWS, _gru.K_BLOCK, _gru.SUM_GROUPS)
        != (_layout.PROJECT_ROWS, _layout.K_BLOCK, _layout.SUM_GROUPS)):
    raise ImportError("fastgru_ext._gru was built for another fastgru: rebuild it "
                      "(python setup.py build_ext --inplace, or pip install .)")

KERNELS = _engine.Kernels(_gru.project_team, _gru.forward_team, _gru.backward_team,
                          _gru.dx_team, _gru.sums_team, _gru.step)
forward, backward, step = _engine.entry_points(KERNELS)
prepare_step = _engine.prepare_step


def linear(x, w, b, out):
    """Same contract as ``reference.linear``."""
    _engine.linear(KERNELS, x, w, b, out)
