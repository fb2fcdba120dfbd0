"""GRU and GRUCell layers: stacks of one-direction kernels, dropout, layouts.

Threads: a layer keeps one tape per calling thread, so threads may train the same
layer at once (each backward follows its own thread's forward; gradients are added
into .grad under a lock) and run inference on it at once.
"""
from __future__ import annotations

import threading

import numpy as np
from numpy.typing import ArrayLike, DTypeLike

from .. import _validate as v
from .. import backends
from ..backends.contract import Layer
from ..functional import run_backward, run_forward
from .module import TAPE_MISSING, Module, grad_lock, last_record, own_entry, own_slot, pop_record, push_record


def parameter_names(layer=None, reverse=False, bias=True):
    """torch's names of one direction of one layer, in state-dict order.

    ``[weight_ih_l{layer}, weight_hh_l{layer}, bias_ih_l{layer}, bias_hh_l{layer}]`` as in
    torch.nn.GRU, each with ``_reverse`` for the backward direction; the two biases only
    with ``bias``. ``layer=None`` gives torch.nn.GRUCell's unsuffixed names. Every other
    place that spells a GRU's parameter names (the converters, ``bench/``) asks this.
    """
    if layer is None:
        if reverse:
            raise ValueError("a GRUCell has no reverse direction (layer=None, reverse=True)")
        suffix = ""
    else:
        suffix = f"_l{layer}" + ("_reverse" if reverse else "")
    names = ("weight_ih", "weight_hh", "bias_ih", "bias_hh")[:4 if bias else 2]
    return [name + suffix for name in names]


# a GRUCell's names, looked up once: its step is called per time step
_W_IH, _W_HH, _B_IH, _B_HH = parameter_names()


def _uniform_init(module, shapes, fan, seed):
    rng = np.random.default_rng(v.seed(seed))
    bound = 1.0 / np.sqrt(fan)
    for name, shape in shapes:
        module._add(name, rng.uniform(-bound, bound, size=shape))
    return rng


class GRU(Module):
    """A multi-layer GRU with PyTorch's parameters, layouts and semantics.

    Input (T, B, I), or (B, T, I) with batch_first, or unbatched (T, I).
    h0 and h_n are (num_layers * num_directions, B, H), or (L*D, H) unbatched.
    Parameters are named as in torch.nn.GRU (``weight_ih_l0``, ``bias_hh_l1_reverse``, ...).
    """

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, bias: bool = True,
                 batch_first: bool = False, dropout: float = 0.0, bidirectional: bool = False,
                 reset: str = "after", dtype: DTypeLike = "float32", seed: int | None = None):
        super().__init__(dtype)
        self.input_size = v.positive_int(input_size, "input_size")
        self.hidden_size = v.positive_int(hidden_size, "hidden_size")
        self.num_layers = v.positive_int(num_layers, "num_layers")
        self.bias = v.flag(bias, "bias")
        self.batch_first = v.flag(batch_first, "batch_first")
        self.dropout = v.dropout_rate(dropout)
        self.bidirectional = v.flag(bidirectional, "bidirectional")
        self.reset = v.reset_mode(reset)
        self.num_directions = 2 if self.bidirectional else 1
        H, D = self.hidden_size, self.num_directions
        shapes: list[tuple[str, tuple[int, ...]]] = []
        for k in range(self.num_layers):
            in_k = self.input_size if k == 0 else H * D
            for d in range(D):
                w_ih, w_hh, *biases = parameter_names(k, bool(d), self.bias)
                shapes += [(w_ih, (3 * H, in_k)), (w_hh, (3 * H, H))]
                shapes += [(name, (3 * H,)) for name in biases]
        self._rng = _uniform_init(self, shapes, H, seed)
        # per calling thread: the tape of its last train forward, and the caches its last
        # backward consumed (reused by its next train forward); see _own_slot
        self._tapes: dict = {}
        self._spares: dict = {}

    def __repr__(self):
        return (f"GRU({self.input_size}, {self.hidden_size}, num_layers={self.num_layers}, "
                f"bias={self.bias}, batch_first={self.batch_first}, dropout={self.dropout}, "
                f"bidirectional={self.bidirectional}, reset={self.reset!r}, dtype={self.dtype.name!r})")

    def _weights(self, k, d):
        """[weight_ih, weight_hh, bias_ih, bias_hh] Parameters of layer k, direction d
        (the biases None without bias)."""
        params = [self._params[name] for name in parameter_names(k, bool(d), self.bias)]
        return params + [None, None] if len(params) == 2 else params

    def __call__(self, x: ArrayLike, h0: ArrayLike | None = None,
                 lengths: ArrayLike | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Inference: (out, h_n), keeping nothing for backward."""
        return self.forward(x, h0, lengths, train=False)

    def _inputs(self, x, h0, lengths) -> tuple[np.ndarray, np.ndarray, np.ndarray, bool]:
        """Validate and bring to time-major (T, B, I) and (L*D, B, H)."""
        x = v.float_array(x, "x", self.dtype, ndim=(2, 3))
        unbatched = x.ndim == 2
        if unbatched:
            x = x[:, None, :]
        elif self.batch_first:
            x = x.transpose(1, 0, 2)
        T, B, I = x.shape
        if I != self.input_size:
            raise ValueError(f"x must have {self.input_size} features (input_size) in its last "
                             f"dimension, got {I} (shape {x.shape})")
        LD, H = self.num_layers * self.num_directions, self.hidden_size
        if h0 is None:
            h0 = np.zeros((LD, B, H), self.dtype)
        elif unbatched:
            h0 = v.float_array(h0, "h0", self.dtype, shape=(LD, H))[:, None, :]
        else:
            h0 = v.float_array(h0, "h0", self.dtype, shape=(LD, B, H))
        if unbatched and lengths is not None:
            lengths = np.asarray(lengths).reshape(-1) if np.ndim(lengths) == 0 else lengths
        lengths = v.lengths_array(lengths, B, T)
        return np.ascontiguousarray(x), h0, lengths, unbatched

    def _outputs(self, out, h_n, unbatched):
        if unbatched:
            return out[:, 0, :], h_n[:, 0, :]
        if self.batch_first:
            out = np.ascontiguousarray(out.transpose(1, 0, 2))
        return out, h_n

    def forward(self, x: ArrayLike, h0: ArrayLike | None = None, lengths: ArrayLike | None = None,
                train: bool = True) -> tuple[np.ndarray, np.ndarray]:
        """Run the GRU. With train=True, dropout is active and backward() can follow.

        Returns out (T, B, D*H) (or batch_first / unbatched layouts) and h_n (L*D, B, H).
        """
        train = v.flag(train, "train")
        x, h0, lengths, unbatched = self._inputs(x, h0, lengths)
        D, T, B = self.num_directions, x.shape[0], x.shape[1]
        reset = self.reset
        layer_in = x
        no_bias = np.zeros(3 * self.hidden_size, self.dtype)
        h_n = np.empty_like(h0)
        caches, masks = [], []
        spare = None
        if train:   # the caches this thread's last backward consumed: reused, not reallocated
            spare = own_slot(self._spares, pop=True)
        for k in range(self.num_layers):
            if k > 0 and train and self.dropout > 0:
                keep = 1.0 - self.dropout
                mask = (self._rng.random(layer_in.shape) < keep).astype(self.dtype) / keep
                layer_in = layer_in * mask
                masks.append(mask)
            else:
                masks.append(None)
            outs = []
            for d in range(D):
                # validated once, above and in the Parameters: run_forward trusts them
                w_ih, w_hh, b_ih, b_hh = [no_bias if p is None else p.data
                                          for p in self._weights(k, d)]
                layer = Layer(layer_in, w_ih, w_hh, b_ih, b_hh, lengths, bool(d),
                              reset == "after")
                out, h_n[k * D + d], cache = run_forward(
                    layer, h0[k * D + d], train, spare[k * D + d] if train and spare else None)
                outs.append(out)
                caches.append(cache)
            layer_in = outs[0] if D == 1 else np.concatenate(outs, axis=2)
        if train:  # an inference call in between leaves the last train forward's tape
            self._tapes[threading.get_ident()] = own_entry((caches, masks, (T, B), unbatched))
        return self._outputs(layer_in, h_n, unbatched)

    def backward(self, d_out: ArrayLike | None, d_h_n: ArrayLike | None = None,
                 ) -> tuple[np.ndarray, np.ndarray]:
        """Backpropagate through the last train forward.

        Accumulates into each Parameter's .grad and returns (dx, dh0) in the layouts of
        forward's x and h0.
        """
        tape = own_slot(self._tapes)     # taken off once the inputs are checked
        if tape is None:
            raise ValueError(TAPE_MISSING)
        caches, masks, (T, B), unbatched = tape
        D, L, H = self.num_directions, self.num_layers, self.hidden_size
        if d_out is None:  # a loss on h_n alone
            d_out = np.zeros((T, B, D * H), self.dtype)
        elif unbatched:
            d_out = v.float_array(d_out, "d_out", self.dtype, shape=(T, D * H))[:, None, :]
        elif self.batch_first:
            d_out = v.float_array(d_out, "d_out", self.dtype, shape=(B, T, D * H)).transpose(1, 0, 2)
        else:
            d_out = v.float_array(d_out, "d_out", self.dtype, shape=(T, B, D * H))
        if d_h_n is None:
            d_h_n = np.zeros((L * D, B, H), self.dtype)
        elif unbatched:
            d_h_n = v.float_array(d_h_n, "d_h_n", self.dtype, shape=(L * D, H))[:, None, :]
        else:
            d_h_n = v.float_array(d_h_n, "d_h_n", self.dtype, shape=(L * D, B, H))
        own_slot(self._tapes, pop=True)  # as torch: a second backward needs a new forward
        dh0 = np.empty((L * D, B, H), self.dtype)
        d_layer = np.asarray(d_out)   # an ndarray already (for the type checker)
        for k in reversed(range(L)):
            d_in = None
            for d in range(D):
                grads = run_backward(caches[k * D + d],
                                     np.ascontiguousarray(d_layer[:, :, d * H:(d + 1) * H]),
                                     np.ascontiguousarray(d_h_n[k * D + d]))
                dx, dh0[k * D + d] = grads[0], grads[1]
                with grad_lock:   # another thread may be adding into the same .grad
                    for param, g in zip(self._weights(k, d), grads[2:]):
                        if param is not None:
                            param.grad += g
                d_in = dx if d_in is None else d_in + dx
            assert d_in is not None   # D >= 1 directions
            if masks[k] is not None:
                d_in = d_in * masks[k]
            d_layer = d_in
        # nothing reads the caches now: this thread's next train forward reuses them
        self._spares[threading.get_ident()] = own_entry(caches)
        return self._outputs(d_layer, dh0, unbatched)


class GRUCell(Module):
    """One GRU step: h' = cell(x_t, h). Parameters as torch.nn.GRUCell.

    ``cell(x, h)`` is inference (for streaming). ``cell.forward(x, h, train=True)`` also
    records what backward needs, on a stack per thread; ``cell.backward(dh_next)`` pops the
    latest record (last in, first out), so a loop over steps is trained by calling backward
    once per step in reverse order, whatever computed each step's input.
    ``clear()`` or ``zero_grad()`` drops records no backward used.
    """

    _RECORDS = ("_records",)

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True, reset: str = "after",
                 dtype: DTypeLike = "float32", seed: int | None = None):
        super().__init__(dtype)
        self.input_size = v.positive_int(input_size, "input_size")
        self.hidden_size = v.positive_int(hidden_size, "hidden_size")
        self.bias = v.flag(bias, "bias")
        self.reset = v.reset_mode(reset)
        H = self.hidden_size
        w_ih, w_hh, *biases = parameter_names(bias=self.bias)
        shapes: list[tuple[str, tuple[int, ...]]] = [(w_ih, (3 * H, self.input_size)),
                                                     (w_hh, (3 * H, H))]
        shapes += [(name, (3 * H,)) for name in biases]
        _uniform_init(self, shapes, H, seed)
        self._prepared: tuple | None = None   # (key, packed weights) for the compiled step
        self._records: dict = {}  # per calling thread: the caches of its train steps, last on top

    def __repr__(self):
        return (f"GRUCell({self.input_size}, {self.hidden_size}, bias={self.bias}, "
                f"reset={self.reset!r}, dtype={self.dtype.name!r})")

    def __call__(self, x: ArrayLike, h: ArrayLike | None = None) -> np.ndarray:
        """Inference: x (B, I) or (I,); h (B, H) or (H,) or None for zeros. Returns the
        next state (B, H) or (H,), recording nothing."""
        return self.forward(x, h, train=False)

    def _inputs(self, x, h):
        """Validate: x as (B, I), h as (B, H) (zeros for None), and whether x was 1-D."""
        x = v.float_array(x, "x", self.dtype, ndim=(1, 2))
        unbatched = x.ndim == 1
        xb = x[None, :] if unbatched else x
        if xb.shape[1] != self.input_size:
            raise ValueError(f"x must have {self.input_size} features (input_size), "
                             f"got shape {x.shape}")
        B, H = xb.shape[0], self.hidden_size
        if h is None:
            h = np.zeros((B, H), self.dtype)
        else:
            h = v.float_array(h, "h", self.dtype, shape=(H,) if unbatched else (B, H))
            h = h[None, :] if unbatched else h
        return xb, h, unbatched

    def _biases(self):
        if self.bias:
            return self._params[_B_IH].data, self._params[_B_HH].data
        zeros = np.zeros(3 * self.hidden_size, self.dtype)
        return zeros, zeros

    def forward(self, x, h=None, train=True):
        """One step: x (B, I) or (I,), h (B, H) or (H,) or None for zeros -> the next state.

        With train=True, records what ``backward`` needs (a private copy of x, h and the
        gates) on this thread's stack.
        """
        train = v.flag(train, "train")
        xb, h, unbatched = self._inputs(x, h)
        p = self._params
        b_ih, b_hh = self._biases()
        if train:   # the sequence kernel with T = 1 keeps the cache its backward reads
            layer = Layer(xb[None], p[_W_IH].data, p[_W_HH].data, b_ih, b_hh,
                          np.ones(len(xb), np.int64), False, self.reset == "after")
            _, out, cache = run_forward(layer, h, True)
            push_record(self._records, (cache, unbatched))
        else:
            out = self._step(xb, h, b_ih, b_hh)
        return out[0] if unbatched else out

    def _step(self, xb, h, b_ih, b_hh):
        out = np.empty(h.shape, self.dtype)
        backend = backends.current()
        p_ih, p_hh = self._params[_W_IH], self._params[_W_HH]
        w_ih, w_hh = p_ih.data, p_hh.data
        prepared = None
        if hasattr(backend, "prepare_step"):   # packed weights, kept while the versions hold
            key = (backend.__name__, p_ih.version, p_hh.version, id(w_ih), id(w_hh))
            kept = self._prepared
            if kept is None or kept[0] != key:
                kept = self._prepared = (key, backend.prepare_step(w_ih, w_hh, self.dtype))
            prepared = kept[1]
        backend.step(xb, h, w_ih, w_hh, b_ih, b_hh, self.reset == "after", out, prepared)
        return out

    def backward(self, dh_next):
        """Backpropagate through this thread's latest train step not yet backpropagated.

        dh_next : the loss gradient at that step's returned state, (B, H) or (H,) as it was
        returned; all that reaches the state from later steps and other uses added together.
        Accumulates into each Parameter's .grad and returns (dx, dh): the gradients at that
        step's x and h, in their shapes.
        """
        record = last_record(self._records)
        if record is None:
            raise ValueError("GRUCell.backward() needs a preceding forward(x, h, train=True) "
                             "not yet backpropagated: one backward per train step, the last "
                             "step first; inference calls cell(x, h) record nothing")
        cache, unbatched = record
        B, H = cache.layer.x.shape[1], self.hidden_size
        dh_next = v.float_array(dh_next, "dh_next", self.dtype,
                                shape=(H,) if unbatched else (B, H))
        pop_record(self._records)
        grads = run_backward(cache, np.zeros((1, B, H), self.dtype),
                             np.ascontiguousarray(dh_next.reshape(B, H)))
        with grad_lock:   # another thread may be adding into the same .grad
            for name, g in zip((_W_IH, _W_HH, _B_IH, _B_HH), grads[2:]):
                if name in self._params:
                    self._params[name].grad += g
        dx, dh = grads[0][0], grads[1]
        return (dx[0], dh[0]) if unbatched else (dx, dh)
