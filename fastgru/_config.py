"""show_config(): what fastgru runs with here, for bug reports and benchmarks."""
import os
import platform
import sys


def _cpu_features():
    """The vector instruction sets the product kernels can use on this machine."""
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


def config():
    """The facts show_config prints, as a dict."""
    import numpy as np

    from . import __version__, backends
    from ._threads import _default_threads, get_num_threads
    info = {
        "fastgru": __version__,
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "numpy": np.__version__,
        "backend": backends.get_backend(),
        "available_backends": backends.available_backends(),
        "threads": get_num_threads(),
        "default_threads": _default_threads(),
        "cpu_features": _cpu_features(),
    }
    try:
        import numba
        info["numba"] = numba.__version__
    except ImportError:
        info["numba"] = None
    try:
        from fastgru_ext import _gru
        info["fastgru_ext"] = os.path.basename(_gru.__file__)
    except ImportError as exc:
        info["fastgru_ext"] = f"not available ({exc})"
    return info


def show_config(file=None):
    """Print versions, backends, threads and the instruction sets in use."""
    for key, value in config().items():
        print(f"{key:>20}: {value}", file=file or sys.stdout)
