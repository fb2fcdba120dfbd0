"""The types the bench's implementations share: a Problem (a case's data), a Runner (what
is timed and how its result is read) and the two ways a run can fail to count."""
import contextlib
import dataclasses
import importlib

import numpy as np


class Unsupported(Exception):
    """This implementation cannot run this case here (library missing, feature absent)."""


class CheckFailed(AssertionError):
    """An implementation's result differs from fastgru's NumPy reference."""


@dataclasses.dataclass
class Problem:
    params: dict            # torch-style name -> array in the case's dtype
    x: np.ndarray           # (T, B, I), or (B, I) for a cell step
    h0: np.ndarray          # (L*D, B, H), or (B, H) for a cell step
    lengths: object         # (B,) int64 or None
    d_out: np.ndarray       # (T, B, D*H): the gradient of the loss sum(out * d_out)


@dataclasses.dataclass
class Runner:
    impl: str
    fn: object                                  # zero-argument callable: what is timed
    collect: object                             # fn's return value -> {name: ndarray}
    context: object = contextlib.nullcontext    # entered around checks and timing loops
    activate: object = lambda: None             # called before checks and timing
    compile_s: object = None                    # ahead-of-time compile (JAX), excluded from timing
    first_call_s: object = None                 # the first call, checked (includes any JIT)
    max_err: object = None                      # None: not checked (no reference available)
    info: dict = dataclasses.field(default_factory=dict)   # settings worth recording


def load(module):
    """import_module(module), or Unsupported if it cannot be imported."""
    try:
        return importlib.import_module(module)
    except Exception as exc:     # ImportError, or a broken install: skip, never fail
        raise Unsupported(f"{module} is not installed ({type(exc).__name__}: {exc})") from None
