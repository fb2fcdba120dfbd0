"""show_config(): what fastgru runs with here, for bug reports and benchmarks
(in the spirit of ``numpy.show_config()``)."""
from __future__ import annotations

import os
import platform
import sys
from typing import Any, TextIO


def _cpu_features() -> list[str]:
    """The vector instruction sets of this CPU that fastgru's kernels can use."""
    try:
        import llvmlite.binding as llb
        flags = set(llb.get_host_cpu_features().flatten().split(","))
        return [f for f in ("avx512f", "avx2", "fma", "avx", "neon", "sve")
                if f"+{f}" in flags]
    except ImportError:
        pass
    try:
        with open("/proc/cpuinfo") as f:
            words = set(next((ln for ln in f if ln.startswith(("flags", "Features"))), "").split())
        return [f for f in ("avx512f", "avx2", "fma", "avx", "asimd") if f in words]
    except OSError:
        return []


def _cython_isa() -> dict[str, Any]:
    """The Cython backend's product kernels: the instruction set in use and the others."""
    try:
        from .backends import cython_backend
    except ImportError as exc:
        return {"cython_isa": f"not available ({exc})"}
    info = cython_backend.isa_info()
    fused = "fused multiply-add" if info["fused_multiply_add"] else "multiply, then add"
    return {"cython_isa": f"{info['in_use']} ({fused})",
            "cython_isa_compiled": info["compiled"],
            "cython_isa_runs_here": info["runs_here"],
            "FASTGRU_ISA": info["cap"] or "unset"}


def config() -> dict[str, dict[str, Any]]:
    """The facts show_config prints, by section."""
    import numpy as np

    from . import __version__, backends
    from ._threads import _default_threads, get_num_threads
    try:
        import numba
        numba_version = numba.__version__
    except ImportError as exc:
        numba_version = f"not installed ({exc})"
    try:
        from fastgru_ext import _gru  # type: ignore[attr-defined]  # compiled
        ext = _gru.__file__
    except ImportError as exc:
        ext = f"not available ({exc})"
    return {
        "versions": {"fastgru": __version__, "python": sys.version.split()[0],
                     "numpy": np.__version__, "numba": numba_version,
                     "platform": platform.platform()},
        "backends": {"backend": backends.get_backend(),
                     "available_backends": backends.available_backends(),
                     "fastgru_path": os.path.dirname(os.path.abspath(__file__)),
                     "fastgru_ext": ext},
        "threads": {"threads": get_num_threads(), "default_threads": _default_threads(),
                    "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "unset")},
        "instruction sets": {"cpu_features": _cpu_features(), **_cython_isa()},
    }


def show_config(file: TextIO | None = None) -> None:
    """Print versions, backends, threads and the instruction sets in use."""
    out = file or sys.stdout
    for section, facts in config().items():
        print(f"{section}:", file=out)
        for key, value in facts.items():
            print(f"  {key:>20}: {value}", file=out)
