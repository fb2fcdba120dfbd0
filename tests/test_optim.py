"""fastgru.optim: SGD, Adam and clip_grad_norm_ against hand-written scalar loops (textbook
formulas, one number at a time), hand-computed values, and torch.optim live."""
import math

import numpy as np
import pytest

from fastgru.nn import Parameter
from fastgru.optim import SGD, Adam, clip_grad_norm_

# after a few steps, parameters vs torch's: max abs diff <= TOL * max(1, max |torch|)
TORCH_TOL = {np.dtype(np.float64): 1e-14, np.dtype(np.float32): 1e-6}

SGD_OPTIONS = [
    dict(lr=0.1),
    dict(lr=0.1, momentum=0.9),
    dict(lr=0.1, momentum=0.9, dampening=0.3),
    dict(lr=0.1, momentum=0.9, nesterov=True),
    dict(lr=0.05, momentum=0.5, weight_decay=0.1),
    dict(lr=0.05, momentum=0.5, weight_decay=0.1, nesterov=True),
    dict(lr=0.1, weight_decay=0.2),
]
ADAM_OPTIONS = [
    dict(),
    dict(lr=0.01),
    dict(lr=0.01, betas=(0.8, 0.99), eps=1e-6),
    dict(lr=0.01, weight_decay=0.1),
    dict(lr=0.01, amsgrad=True),
    dict(lr=0.02, betas=(0.5, 0.9), weight_decay=0.05, amsgrad=True),
]


def _problem(rng, dtype, steps=6):
    """Two parameters of different shapes and a gradient for each of ``steps`` steps."""
    shapes = [(3, 4), (5,)]
    init = [rng.standard_normal(s).astype(dtype) for s in shapes]
    grads = [[rng.standard_normal(s).astype(dtype) for s in shapes] for _ in range(steps)]
    # make the second moment shrink on some steps so amsgrad's max matters
    for k in range(3, steps):
        grads[k] = [g * 0.1 for g in grads[k]]
    return init, grads


def _run_fastgru(opt_class, options, init, grads):
    params = [Parameter(a) for a in init]
    opt = opt_class(params, **options)
    for step_grads in grads:
        opt.zero_grad()
        for p, g in zip(params, step_grads):
            p.grad += g
        opt.step()
    return [p.data for p in params]


def _run_torch(torch, opt_class, options, init, grads):
    params = [torch.tensor(a, requires_grad=True) for a in init]
    opt = getattr(torch.optim, opt_class.__name__)(params, **options)
    for step_grads in grads:
        opt.zero_grad()
        for p, g in zip(params, step_grads):
            p.grad = torch.tensor(g)
        opt.step()
    return [p.detach().numpy() for p in params]


def naive_sgd(p, grads, lr, momentum=0.0, dampening=0.0, weight_decay=0.0, nesterov=False):
    """SGD on one float, from torch.optim.SGD's documented algorithm."""
    buf = None
    for g in grads:
        g = g + weight_decay * p
        if momentum:
            buf = g if buf is None else momentum * buf + (1 - dampening) * g
            g = g + momentum * buf if nesterov else buf
        p = p - lr * g
    return p


def naive_adam(p, grads, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0,
               amsgrad=False):
    """Adam on one float, from torch.optim.Adam's documented algorithm."""
    b1, b2 = betas
    m = v = v_max = 0.0
    for t, g in enumerate(grads, start=1):
        g = g + weight_decay * p
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        m_hat = m / (1 - b1 ** t)
        if amsgrad:
            v_max = max(v_max, v)
            v_hat = v_max / (1 - b2 ** t)
        else:
            v_hat = v / (1 - b2 ** t)
        p = p - lr * m_hat / (math.sqrt(v_hat) + eps)
    return p


def _assert_params_close(actual, expected, dtype, what):
    tol = TORCH_TOL[np.dtype(dtype)]
    for k, (a, e) in enumerate(zip(actual, expected)):
        assert a.dtype == np.dtype(dtype) and a.shape == e.shape, f"{what} param {k}"
        scale = max(1.0, float(np.abs(e).max()))
        err = float(np.abs(a.astype(np.float64) - e.astype(np.float64)).max())
        assert err <= tol * scale, f"{what} param {k}: max abs diff {err:.3g}"


# ---------------------------------------------------------------- hand-written references

NAIVE = ([(SGD, naive_sgd, options, 1e-13) for options in SGD_OPTIONS]
         + [(Adam, naive_adam, options, 1e-12) for options in ADAM_OPTIONS])


@pytest.mark.parametrize("cls, naive, options, rel", NAIVE,
                         ids=[f"{c.__name__}-{o}" for c, _, o, _ in NAIVE])
def test_matches_naive_loop(rng, cls, naive, options, rel):
    init, grads = _problem(rng, np.float64)
    actual = _run_fastgru(cls, options, init, grads)
    for k in range(len(init)):
        for idx in np.ndindex(init[k].shape):
            expected = naive(float(init[k][idx]), [float(g[k][idx]) for g in grads], **options)
            assert actual[k][idx] == pytest.approx(expected, rel=rel, abs=1e-13)


def test_sgd_by_hand():
    p = Parameter(np.array([1.0, -2.0]))
    opt = SGD([p], lr=0.1, momentum=0.9)
    p.grad[...] = [0.5, 1.0]
    opt.step()                      # buf = g;  p -= 0.1 g
    np.testing.assert_allclose(p.data, [0.95, -2.1], rtol=1e-15)
    opt.step()                      # buf = 0.9 g + g = 1.9 g
    np.testing.assert_allclose(p.data, [0.95 - 0.095, -2.1 - 0.19], rtol=1e-15)


def test_adam_first_step_moves_by_lr():
    """Step 1: m_hat = g and v_hat = g^2, so every parameter moves by lr * g / (|g| + eps)."""
    p = Parameter(np.array([1.0, 1.0, 1.0]))
    p.grad[...] = [0.5, -2.0, 1e-3]
    Adam([p], lr=0.1).step()
    np.testing.assert_allclose(p.data, [1 - 0.1 * 0.5 / (0.5 + 1e-8), 1 + 0.1 * 2 / (2 + 1e-8),
                                        1 - 0.1 * 1e-3 / (1e-3 + 1e-8)], rtol=1e-15)


def test_adam_weight_decay_and_amsgrad_by_hand():
    # weight decay adds 0.5 * p = 0.5 to the gradient: g = 0.5 + 0.5 = 1.0
    p = Parameter(np.array([1.0]))
    p.grad[...] = 0.5
    Adam([p], lr=0.1, weight_decay=0.5, eps=0.0).step()
    np.testing.assert_allclose(p.data, [0.9], rtol=1e-15)
    # amsgrad: a big gradient then a small one; the small step is normalised by the max
    q, r = Parameter(np.array([0.0])), Parameter(np.array([0.0]))
    with_max, without = Adam([q], lr=0.1, betas=(0.0, 0.5), eps=0.0, amsgrad=True), \
        Adam([r], lr=0.1, betas=(0.0, 0.5), eps=0.0)
    for g in (10.0, 0.1):
        q.grad[...] = r.grad[...] = g
        with_max.step()
        without.step()
    # step 2: m_hat = 0.1; v = 0.5*100*0.5 ... v2 = 25.005, v_max = max(50, 25.005) = 50
    v_hat_max, v_hat = 50 / (1 - 0.25), 25.005 / (1 - 0.25)
    np.testing.assert_allclose(q.data, [-0.1 - 0.1 * 0.1 / math.sqrt(v_hat_max)], rtol=1e-14)
    np.testing.assert_allclose(r.data, [-0.1 - 0.1 * 0.1 / math.sqrt(v_hat)], rtol=1e-14)


def test_float32_stays_float32(rng):
    init, grads = _problem(rng, np.float32)
    for cls, options in ((SGD, SGD_OPTIONS[-2]), (Adam, ADAM_OPTIONS[-1])):
        for a in _run_fastgru(cls, options, init, grads):
            assert a.dtype == np.float32


def test_zero_grad_and_defaults():
    p = Parameter(np.ones(3, np.float32))
    p.grad[...] = 1
    opt = Adam([p])
    assert opt.defaults == {"lr": 1e-3, "betas": (0.9, 0.999), "eps": 1e-8, "weight_decay": 0.0,
                            "amsgrad": False}
    opt.zero_grad()
    assert not p.grad.any()
    assert SGD([p]).defaults == {"lr": 1e-3, "momentum": 0.0, "dampening": 0.0,
                                 "weight_decay": 0.0, "nesterov": False}
    assert "Adam(1 parameters" in repr(opt)


# ---------------------------------------------------------------- torch live

@pytest.mark.parametrize("cls, options", [(SGD, o) for o in SGD_OPTIONS]
                         + [(Adam, o) for o in ADAM_OPTIONS],
                         ids=[f"SGD-{o}" for o in SGD_OPTIONS] + [f"Adam-{o}" for o in ADAM_OPTIONS])
def test_matches_torch_live(dtype, rng, cls, options):
    torch = pytest.importorskip("torch")
    init, grads = _problem(rng, dtype)
    _assert_params_close(_run_fastgru(cls, options, init, grads),
                         _run_torch(torch, cls, options, init, grads), dtype,
                         f"{cls.__name__} {options}")


@pytest.mark.parametrize("norm_type", [2.0, 1.0, 3.0, math.inf])
@pytest.mark.parametrize("max_norm", [0.5, 100.0])
def test_clip_grad_norm_matches_torch_live(dtype, rng, norm_type, max_norm):
    torch = pytest.importorskip("torch")
    init, grads = _problem(rng, dtype, steps=1)
    ours = [Parameter(a) for a in init]
    theirs = [torch.tensor(a, requires_grad=True) for a in init]
    for p, t, g in zip(ours, theirs, grads[0]):
        p.grad[...] = g
        t.grad = torch.tensor(g)
    total = clip_grad_norm_(ours, max_norm, norm_type=norm_type)
    expected = torch.nn.utils.clip_grad_norm_(theirs, max_norm, norm_type=norm_type)
    assert total.dtype == dtype
    assert float(total) == pytest.approx(float(expected), rel=TORCH_TOL[dtype] * 10)
    _assert_params_close([p.grad for p in ours], [t.grad.numpy() for t in theirs], dtype,
                         "clipped grads")


def test_clip_grad_norm_by_hand():
    a, b = Parameter(np.zeros(1)), Parameter(np.zeros(2))
    a.grad[...] = 3.0
    b.grad[...] = [0.0, 4.0]
    total = clip_grad_norm_([a, b], max_norm=1.0)
    assert total == pytest.approx(5.0, rel=1e-15)
    scale = 1.0 / (5.0 + 1e-6)
    np.testing.assert_allclose(a.grad, [3 * scale], rtol=1e-15)
    np.testing.assert_allclose(b.grad, [0.0, 4 * scale], rtol=1e-15)
    # under the limit: unchanged
    before = b.grad.copy()
    assert clip_grad_norm_([b], max_norm=10.0) == pytest.approx(4 * scale, rel=1e-15)
    np.testing.assert_array_equal(b.grad, before)
    assert clip_grad_norm_([a], max_norm=1.0, norm_type="inf") == pytest.approx(3 * scale)
    assert clip_grad_norm_([], 1.0) == 0.0
    a.grad[...] = np.nan
    with pytest.raises(RuntimeError, match="non-finite"):
        clip_grad_norm_([a], 1.0, error_if_nonfinite=True)


# ---------------------------------------------------------------- validation

@pytest.mark.parametrize("cls, kwargs, match", [
    (SGD, dict(lr=-0.1), "invalid learning rate"),
    (SGD, dict(lr=float("nan")), "invalid learning rate"),
    (SGD, dict(momentum=-1), "invalid momentum"),
    (SGD, dict(weight_decay=-1), "invalid weight_decay"),
    (SGD, dict(nesterov=True), "Nesterov momentum requires a momentum"),
    (SGD, dict(momentum=0.9, dampening=0.1, nesterov=True), "zero dampening"),
    (Adam, dict(lr=-1), "invalid learning rate"),
    (Adam, dict(eps=-1e-8), "invalid epsilon"),
    (Adam, dict(betas=(1.0, 0.999)), r"index 0 \(betas\[0\]\): 1.0"),
    (Adam, dict(betas=(0.9, -0.1)), r"index 1"),
    (Adam, dict(betas=0.9), "pair"),
    (Adam, dict(weight_decay=-0.1), "invalid weight_decay"),
])
def test_bad_hyperparameters_raise_value_error(cls, kwargs, match):
    with pytest.raises(ValueError, match=match):
        cls([Parameter(np.zeros(2))], **kwargs)


def test_bad_params():
    p = Parameter(np.zeros(2))
    with pytest.raises(ValueError, match="empty parameter list"):
        Adam([])
    with pytest.raises(TypeError, match="single Parameter"):
        Adam(p)
    with pytest.raises(TypeError, match=r"params\[1\] must be a fastgru.nn.Parameter"):
        SGD([p, np.zeros(2)], lr=0.1)
    with pytest.raises(ValueError, match="more than once"):
        SGD([p, p], lr=0.1)
    with pytest.raises(TypeError, match="lr"):
        Adam([p], lr="0.1")
    with pytest.raises(TypeError, match="iterable"):
        Adam(3)
    with pytest.raises(ValueError, match="max_norm"):
        clip_grad_norm_([p], -1.0)
