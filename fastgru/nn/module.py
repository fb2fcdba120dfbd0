"""Parameter and the small Module base that layers share: parameters, state dicts, grads."""
import os
import threading

import numpy as np

from .. import _validate as v

TAPE_MISSING = ("backward() needs a preceding forward(..., train=True), one per backward; "
                "inference calls keep nothing to backpropagate")


# held while a backward adds into .grad arrays: threads may train one layer at once.
# os.fork waits for it (and releases it on both sides), so a child never starts with the
# lock held by a thread it does not have, nor with a .grad half added to.
grad_lock = threading.Lock()
if hasattr(os, "register_at_fork"):
    os.register_at_fork(before=grad_lock.acquire, after_in_parent=grad_lock.release,
                        after_in_child=grad_lock.release)


def own_slot(slots, pop=False):
    """This thread's entry of a per-thread dict {ident: (thread, value)}, or None. An
    entry left by a finished thread whose ident was reused is not this thread's."""
    ident = threading.get_ident()
    entry = slots.pop(ident, None) if pop else slots.get(ident)
    if entry is None or entry[0] is not threading.current_thread():
        return None
    return entry[1]


def own_entry(value):
    """A value for a per-thread dict, tagged with the calling thread (see own_slot)."""
    return threading.current_thread(), value


# A record is a per-thread stack (last in, first out) of what train forwards kept, for
# layers called several times before their backwards (a GRUCell or a Linear in a loop over
# steps): each backward pops the latest forward of its own thread.

def push_record(slots, value):
    """Push value onto the calling thread's record in slots."""
    stack = own_slot(slots)
    if stack is None:
        stack = []
        slots[threading.get_ident()] = own_entry(stack)
    stack.append(value)


def last_record(slots):
    """The calling thread's latest recorded value (left in place), or None."""
    stack = own_slot(slots)
    return stack[-1] if stack else None


def pop_record(slots):
    """Remove the calling thread's latest recorded value (after last_record checked it)."""
    own_slot(slots).pop()


def clear_record(slots):
    """Forget what the calling thread recorded and did not backpropagate."""
    own_slot(slots, pop=True)


class Parameter:
    """A trainable array and its gradient (same shape and dtype), both NumPy arrays.

    ``version`` counts the changes fastgru knows of: assigning ``.data`` (which the
    optimizers' in-place updates do, as ``p.data -= ...``) and ``load_state_dict``.
    A layer may keep its weights prepared (packed for the product kernels) while the
    versions stay the same: after editing ``.data`` in place yourself
    (``p.data[...] = ...``), call ``p.changed()``.
    """

    __slots__ = ("_data", "grad", "version")

    def __init__(self, data, dtype=None):
        arr = np.asarray(data)
        self.version = 0
        self._data = np.array(arr, dtype=v.as_dtype(dtype or arr.dtype), order="C", copy=True)
        self.grad = np.zeros_like(self._data)

    @property
    def data(self):
        return self._data

    @data.setter
    def data(self, value):
        """Checked here, once: the layers hand .data to the kernels as it is. The same
        array (``p.data -= ...``) passes through; another dtype is cast."""
        self._data = v.float_array(value, "Parameter.data", self._data.dtype,
                                   shape=self._data.shape)
        self.version += 1

    def changed(self):
        """Say that .data was edited in place (prepared copies are then rebuilt)."""
        self.version += 1

    @property
    def shape(self):
        return self.data.shape

    @property
    def dtype(self):
        return self.data.dtype

    def zero_grad(self):
        self.grad[...] = 0

    def __repr__(self):
        return f"Parameter(shape={self.data.shape}, dtype={self.data.dtype})"


class Module:
    """Holds named Parameters in a fixed order (PyTorch's, for the layers here)."""

    def __init__(self, dtype):
        self.dtype = v.as_dtype(dtype)
        self._params = {}

    def _add(self, name, data):
        self._params[name] = Parameter(data, self.dtype)
        return self._params[name]

    def named_parameters(self):
        return list(self._params.items())

    def parameters(self):
        """The Parameters, in state-dict order."""
        return list(self._params.values())

    def zero_grad(self):
        """Zero every Parameter's .grad and ``clear()`` this thread's records."""
        for p in self._params.values():
            p.zero_grad()
        self.clear()

    # the per-thread records (see push_record) a layer keeps, by attribute name
    _RECORDS: tuple[str, ...] = ()

    def clear(self):
        """Forget what the calling thread's train forwards recorded and no backward used
        (layers with a record: GRUCell, Linear), so a loop stopped half-way leaves
        nothing behind for the next one."""
        for name in self._RECORDS:
            clear_record(self.__dict__[name])

    def state_dict(self):
        """{name: copy of the parameter's array}."""
        return {name: p.data.copy() for name, p in self._params.items()}

    def load_state_dict(self, state):
        """Copy arrays (NumPy or array-likes such as torch tensors) into the Parameters.

        Every key must be present and no other; shapes must match exactly.
        """
        if not hasattr(state, "keys"):
            raise TypeError(f"state must be a mapping of name to array, got {type(state).__name__}")
        missing = [k for k in self._params if k not in state]
        unexpected = [k for k in state if k not in self._params]
        if missing or unexpected:
            raise ValueError(f"{type(self).__name__}.load_state_dict: missing keys {missing}, "
                             f"unexpected keys {unexpected}; expected exactly {list(self._params)}")
        arrays = {name: v.float_array(state[name], name, self.dtype, shape=p.shape)
                  for name, p in self._params.items()}
        for name, arr in arrays.items():   # all checked before anything is written
            self._params[name].data[...] = arr
            self._params[name].changed()

    # per-thread state (tapes, reusable caches) belongs to this process's threads:
    # copies and pickles start without it
    _PER_THREAD = ("_tapes", "_spares", "_records")

    def __getstate__(self):
        state = dict(self.__dict__)
        for name in self._PER_THREAD:
            if name in state:
                state[name] = {}
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)

    def __getattr__(self, name):
        params = self.__dict__.get("_params", {})
        if name in params:
            return params[name]
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")
