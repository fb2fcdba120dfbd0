"""Optimizers with torch.optim's update rules and defaults, on fastgru Parameters.

Each optimizer takes a list of ``fastgru.nn.Parameter`` and updates ``.data`` in place from
``.grad``; the arithmetic follows torch's default single-tensor path step by step (scalars
computed in double precision, arrays in the parameters' dtype), so float32 and float64
training follows torch's to rounding. ``clip_grad_norm_`` is torch.nn.utils.clip_grad_norm_.
"""
import math
import numbers

import numpy as np

from .nn.module import Parameter


def _number(value, name, low=0.0, high=None, high_open=True):
    """A real number in [low, high) (or [low, high]); a ValueError names the bad value."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__} {value!r}")
    value = float(value)
    ok = low <= value and (high is None or (value < high if high_open else value <= high))
    if not ok:   # also catches nan
        where = f"[{low}, " + ("inf)" if high is None else f"{high}{')' if high_open else ']'}")
        raise ValueError(f"invalid {name}: {value} (must lie in {where})")
    return value


def _param_list(params):
    if isinstance(params, Parameter):
        raise TypeError("params must be an iterable of Parameters, such as model.parameters(), "
                        "got a single Parameter (wrap it in a list)")
    try:
        params = list(params)
    except TypeError:
        raise TypeError("params must be an iterable of fastgru.nn.Parameter, such as "
                        f"model.parameters(), got {type(params).__name__}") from None
    if not params:
        raise ValueError("optimizer got an empty parameter list")
    for i, p in enumerate(params):
        if not isinstance(p, Parameter):
            raise TypeError(f"params[{i}] must be a fastgru.nn.Parameter, got {type(p).__name__}")
    if len({id(p) for p in params}) != len(params):
        raise ValueError("some parameters appear more than once in params")
    return params


class Optimizer:
    """Base: holds the Parameters and per-parameter state; subclasses define step()."""

    def __init__(self, params):
        self.params = _param_list(params)
        self.state: list[dict] = [{} for _ in self.params]

    def zero_grad(self):
        """Set every parameter's gradient to zero (gradients accumulate across backward calls)."""
        for p in self.params:
            p.grad[...] = 0

    @property
    def defaults(self) -> dict:
        """The hyperparameters, by name (each optimizer lists its own)."""
        raise NotImplementedError

    def __repr__(self):
        opts = ", ".join(f"{k}={v!r}" for k, v in self.defaults.items())
        return f"{type(self).__name__}({len(self.params)} parameters, {opts})"


class SGD(Optimizer):
    """Stochastic gradient descent with momentum, as torch.optim.SGD.

    Per parameter p with gradient g, at each step::

        g = g + weight_decay * p                          (if weight_decay != 0)
        buf = g  (first step)  or  momentum * buf + (1 - dampening) * g
        g = g + momentum * buf  (nesterov)  or  buf       (if momentum != 0)
        p = p - lr * g
    """

    def __init__(self, params, lr=1e-3, momentum=0, dampening=0, weight_decay=0, nesterov=False):
        lr = _number(lr, "learning rate (lr)")
        momentum = _number(momentum, "momentum")
        dampening = _number(dampening, "dampening", low=-math.inf)
        weight_decay = _number(weight_decay, "weight_decay")
        nesterov = bool(nesterov)
        if nesterov and (momentum <= 0 or dampening != 0):
            raise ValueError("Nesterov momentum requires a momentum > 0 and zero dampening, "
                             f"got momentum={momentum}, dampening={dampening}")
        super().__init__(params)
        self.lr, self.momentum, self.dampening = lr, momentum, dampening
        self.weight_decay, self.nesterov = weight_decay, nesterov

    @property
    def defaults(self):
        return {"lr": self.lr, "momentum": self.momentum, "dampening": self.dampening,
                "weight_decay": self.weight_decay, "nesterov": self.nesterov}

    def step(self):
        """Update every parameter from its .grad."""
        for p, state in zip(self.params, self.state):
            grad = p.grad
            if self.weight_decay != 0:
                grad = grad + self.weight_decay * p.data
            if self.momentum != 0:
                buf = state.get("momentum_buffer")
                if buf is None:
                    buf = state["momentum_buffer"] = grad.copy()
                else:
                    buf *= self.momentum
                    buf += (1 - self.dampening) * grad
                grad = grad + self.momentum * buf if self.nesterov else buf
            p.data -= self.lr * grad


class Adam(Optimizer):
    """Adam (and AMSGrad), as torch.optim.Adam with its defaults.

    Per parameter p with gradient g, at step t = 1, 2, ...::

        g = g + weight_decay * p                          (L2 penalty, if weight_decay != 0)
        m = beta1 * m + (1 - beta1) * g                   (torch computes it as a lerp)
        v = beta2 * v + (1 - beta2) * g * g
        v_max = max(v_max, v)                             (amsgrad; then used in place of v)
        p = p - lr / (1 - beta1**t) * m / (sqrt(v) / sqrt(1 - beta2**t) + eps)
    """

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0,
                 amsgrad=False):
        lr = _number(lr, "learning rate (lr)")
        eps = _number(eps, "epsilon (eps)")
        try:
            beta1, beta2 = betas
        except (TypeError, ValueError):
            raise ValueError(f"betas must be a pair (beta1, beta2), got {betas!r}") from None
        beta1 = _number(beta1, "beta parameter at index 0 (betas[0])", high=1.0)
        beta2 = _number(beta2, "beta parameter at index 1 (betas[1])", high=1.0)
        weight_decay = _number(weight_decay, "weight_decay")
        super().__init__(params)
        self.lr, self.betas, self.eps = lr, (beta1, beta2), eps
        self.weight_decay, self.amsgrad = weight_decay, bool(amsgrad)

    @property
    def defaults(self):
        return {"lr": self.lr, "betas": self.betas, "eps": self.eps,
                "weight_decay": self.weight_decay, "amsgrad": self.amsgrad}

    def step(self):
        """Update every parameter from its .grad."""
        beta1, beta2 = self.betas
        for p, state in zip(self.params, self.state):
            if not state:
                state["step"] = 0
                state["exp_avg"] = np.zeros_like(p.data)
                state["exp_avg_sq"] = np.zeros_like(p.data)
                if self.amsgrad:
                    state["max_exp_avg_sq"] = np.zeros_like(p.data)
            state["step"] += 1
            step = float(state["step"])
            grad = p.grad
            if self.weight_decay != 0:
                grad = grad + self.weight_decay * p.data
            exp_avg, exp_avg_sq = state["exp_avg"], state["exp_avg_sq"]
            _lerp_(exp_avg, grad, 1 - beta1)
            exp_avg_sq *= beta2
            exp_avg_sq += (1 - beta2) * grad * grad
            # the scalars in double, as torch does on its default (non-capturable) path
            bias_correction1 = 1 - beta1 ** step
            bias_correction2 = 1 - beta2 ** step
            step_size = self.lr / bias_correction1
            bias_correction2_sqrt = bias_correction2 ** 0.5
            if self.amsgrad:
                np.maximum(state["max_exp_avg_sq"], exp_avg_sq, out=state["max_exp_avg_sq"])
                denom = np.sqrt(state["max_exp_avg_sq"]) / bias_correction2_sqrt
            else:
                denom = np.sqrt(exp_avg_sq) / bias_correction2_sqrt
            denom += self.eps
            p.data += (-step_size * exp_avg) / denom


def _lerp_(start, end, weight):
    """start += weight * (end - start), in place, with torch.lerp's two formulas."""
    if abs(weight) < 0.5:
        start += weight * (end - start)
    else:
        start[...] = end - (end - start) * (1 - weight)


def clip_grad_norm_(params, max_norm, norm_type=2.0, error_if_nonfinite=False):
    """Scale the gradients in place so that their global norm is at most ``max_norm``.

    As torch.nn.utils.clip_grad_norm_: the norm is taken over all gradients together, as if
    concatenated; each gradient is multiplied by min(1, max_norm / (total_norm + 1e-6)).
    ``norm_type`` is a p >= 1 or ``inf``.

    Returns the total norm before clipping, a NumPy scalar of the gradients' dtype.
    """
    if isinstance(params, Parameter):
        params = [params]
    params = list(params)
    for i, p in enumerate(params):
        if not isinstance(p, Parameter):
            raise TypeError(f"params[{i}] must be a fastgru.nn.Parameter, got {type(p).__name__}")
    max_norm = _number(max_norm, "max_norm")
    norm_type = float(norm_type)
    if not (norm_type >= 1.0):
        raise ValueError(f"norm_type must be >= 1 (or inf), got {norm_type}")
    if not params:
        return np.float32(0.0)
    dt = np.result_type(*[p.grad.dtype for p in params])
    norms = np.array([_vector_norm(p.grad, norm_type) for p in params], dtype=dt)
    total = dt.type(_vector_norm(norms, norm_type))
    if error_if_nonfinite and not np.isfinite(total):
        raise RuntimeError(f"the total norm of order {norm_type} of the gradients is non-finite "
                           f"({total}), so it cannot be clipped; pass error_if_nonfinite=False "
                           "to scale the gradients by it anyway")
    # in the gradients' dtype, as torch computes it with tensors
    clip_coef = min(dt.type(max_norm) / (total + dt.type(1e-6)), dt.type(1.0))
    for p in params:
        p.grad *= clip_coef
    return total


def _vector_norm(a, norm_type):
    a = np.abs(a.ravel())
    if a.size == 0:
        return a.dtype.type(0)
    if norm_type == math.inf:
        return a.max()
    if norm_type == 2.0:
        return np.sqrt(np.dot(a, a))
    return np.sum(a ** norm_type) ** (1.0 / norm_type)
