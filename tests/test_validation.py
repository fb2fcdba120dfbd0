"""Bad input gets a ValueError/TypeError naming what was expected and what was given."""
import numpy as np
import pytest

import fastgru

pytestmark = pytest.mark.quick   # in the subset CI runs on the sdist and the baseline kernels


@pytest.fixture
def gru():
    return fastgru.GRU(3, 4, num_layers=2, seed=0)


X = np.zeros((5, 2, 3), np.float32)


@pytest.mark.parametrize("x,err,msg", [
    (np.zeros((5, 2, 3, 1)), ValueError, r"x must be 2-D or 3-D, got 4-D"),
    (np.zeros(5), ValueError, r"x must be 2-D or 3-D, got 1-D"),
    (np.zeros((5, 2, 4)), ValueError, r"must have 3 features .* got 4"),
    (np.zeros((5, 2, 3), np.int64), TypeError, r"x must hold real floating-point .* integer"),
    (np.zeros((5, 2, 3), np.complex64), TypeError, r"complex"),
    (np.zeros((5, 2, 3), object), TypeError, r"object"),
    (np.zeros((5, 2, 3), bool), TypeError, r"boolean"),
    (None, TypeError, r"x must be an array, got None"),
])
def test_bad_x(gru, x, err, msg):
    with pytest.raises(err, match=msg):
        gru(x)


@pytest.mark.parametrize("h0,msg", [
    (np.zeros((1, 2, 4)), r"h0 must have shape \(2, 2, 4\), got \(1, 2, 4\)"),
    (np.zeros((2, 3, 4)), r"h0 must have shape \(2, 2, 4\), got \(2, 3, 4\)"),
    (np.zeros((2, 4)), r"h0 must have shape \(2, 2, 4\), got \(2, 4\)"),
])
def test_bad_h0(gru, h0, msg):
    with pytest.raises(ValueError, match=msg):
        gru(X, h0)


@pytest.mark.parametrize("lengths,err,msg", [
    (np.array([5, 2, 1]), ValueError, r"lengths must have shape \(2,\)"),
    (np.array([[5, 2]]), ValueError, r"lengths must have shape \(2,\)"),
    (np.array([5.0, 2.0]), TypeError, r"lengths must hold integers, got dtype float64"),
    (np.array([6, 2]), ValueError, r"lengths must lie in \[0, 5\] .* from 2 to 6"),
    (np.array([-1, 2]), ValueError, r"lengths must lie in \[0, 5\]"),
])
def test_bad_lengths(gru, lengths, err, msg):
    with pytest.raises(err, match=msg):
        gru(X, lengths=lengths)


def test_bad_upstream_gradients(gru):
    gru.forward(X)
    with pytest.raises(ValueError, match=r"d_out must have shape \(5, 2, 4\), got \(5, 2, 3\)"):
        gru.backward(np.zeros((5, 2, 3)))
    with pytest.raises(ValueError, match=r"d_h_n must have shape \(2, 2, 4\), got \(1, 2, 4\)"):
        gru.backward(np.zeros((5, 2, 4)), np.zeros((1, 2, 4)))
    with pytest.raises(TypeError, match=r"d_out must hold real floating-point"):
        gru.backward(np.zeros((5, 2, 4), np.int32))


def test_backward_needs_train_forward(gru):
    with pytest.raises(ValueError, match=r"backward\(\) needs a preceding forward\(\.\.\., train=True\)"):
        gru.backward(np.zeros((5, 2, 4)))
    out, _ = gru.forward(X)
    gru(X + 1)  # an inference call in between keeps the train forward's tape
    gru.backward(np.ones_like(out))
    with pytest.raises(ValueError, match="one per backward"):   # as torch: not twice
        gru.backward(np.ones_like(out))


@pytest.mark.parametrize("kwargs,err,msg", [
    (dict(reset="middle"), ValueError, r'reset must be "after" or "before", got \'middle\''),
    (dict(input_size=0), ValueError, r"input_size must be > 0, got 0"),
    (dict(hidden_size=-2), ValueError, r"hidden_size must be > 0, got -2"),
    (dict(num_layers=0), ValueError, r"num_layers must be > 0, got 0"),
    (dict(hidden_size=2.5), TypeError, r"hidden_size must be an int, got float 2.5"),
    (dict(dropout=1.0), ValueError, r"dropout must lie in \[0, 1\), got 1.0"),
    (dict(dropout=-0.1), ValueError, r"dropout must lie in \[0, 1\)"),
    (dict(dtype="int32"), TypeError, r"dtype must be float32 or float64, got int32"),
    (dict(dtype="float16"), TypeError, r"dtype must be float32 or float64, got float16"),
])
def test_bad_constructor_arguments(kwargs, err, msg):
    args = dict(input_size=3, hidden_size=4)
    args.update(kwargs)
    with pytest.raises(err, match=msg):
        fastgru.GRU(**args)


def test_bad_cell_arguments():
    cell = fastgru.GRUCell(3, 4)
    with pytest.raises(ValueError, match=r"must have 3 features .* got shape \(2, 5\)"):
        cell(np.zeros((2, 5)))
    with pytest.raises(ValueError, match=r"h must have shape \(2, 4\), got \(2, 3\)"):
        cell(np.zeros((2, 3)), np.zeros((2, 3)))
    with pytest.raises(ValueError, match=r'reset must be "after" or "before"'):
        fastgru.GRUCell(3, 4, reset="x")


def test_functional_bad_arguments():
    rng = np.random.default_rng(0)
    x, h0 = rng.random((4, 2, 3)), rng.random((2, 5))
    w_ih, w_hh = rng.random((15, 3)), rng.random((15, 5))
    with pytest.raises(ValueError, match=r"x has 3 features but w_ih has shape \(15, 2\)"):
        fastgru.gru_forward(x, h0, rng.random((15, 2)), w_hh, None, None)
    with pytest.raises(ValueError, match=r"w_hh must have shape \(3\*H, H\)"):
        fastgru.gru_forward(x, h0, w_ih, rng.random((15, 4)), None, None)
    with pytest.raises(ValueError, match=r"b_ih must have shape \(15,\), got \(5,\)"):
        fastgru.gru_forward(x, h0, w_ih, w_hh, rng.random(5), None)
    with pytest.raises(ValueError, match=r'reset must be "after" or "before"'):
        fastgru.gru_forward(x, h0, w_ih, w_hh, None, None, reset="After")
    with pytest.raises(TypeError, match=r"cache must be the GRUCache"):
        fastgru.gru_backward(None, None, {"x": x})


def test_load_state_dict_errors(gru):
    sd = gru.state_dict()
    bad = dict(sd)
    del bad["weight_hh_l1"]
    with pytest.raises(ValueError, match=r"missing keys \['weight_hh_l1'\]"):
        gru.load_state_dict(bad)
    with pytest.raises(ValueError, match=r"unexpected keys \['extra'\]"):
        gru.load_state_dict(dict(sd, extra=np.zeros(3)))
    with pytest.raises(ValueError, match=r"weight_ih_l0 must have shape \(12, 3\), got \(12, 4\)"):
        gru.load_state_dict(dict(sd, weight_ih_l0=np.zeros((12, 4))))
    with pytest.raises(TypeError, match=r"bias_ih_l0 must hold real floating-point"):
        gru.load_state_dict(dict(sd, bias_ih_l0=np.zeros(12, np.int64)))
    # a failed load changes nothing
    after = gru.state_dict()
    for k in sd:
        np.testing.assert_array_equal(after[k], sd[k])


def test_unknown_backend():
    with pytest.raises(ValueError, match=r"backend must be one of .* got 'fast'"):
        fastgru.set_backend("fast")


@pytest.mark.parametrize("kwargs,msg", [
    (dict(bidirectional="no"), r"bidirectional must be True or False, got str 'no'"),
    (dict(batch_first=1), r"batch_first must be True or False, got int 1"),
    (dict(bias=None), r"bias must be True or False, got NoneType None"),
    (dict(dtype=None), r"dtype must be float32 or float64, got None"),
])
def test_flags_and_dtype_must_be_what_they_say(kwargs, msg):
    with pytest.raises(TypeError, match=msg):
        fastgru.GRU(3, 4, **kwargs)


def test_functional_reverse_must_be_a_bool():
    rng = np.random.default_rng(0)
    args = (rng.random((4, 2, 3)), None, rng.random((15, 3)), rng.random((15, 5)), None, None)
    with pytest.raises(TypeError, match=r"reverse must be True or False, got str 'no'"):
        fastgru.gru_forward(*args, reverse="no")
    fastgru.gru_forward(*args, reverse=np.bool_(True))


def test_backward_with_a_loss_on_h_n_only(gru):
    out, h_n = gru.forward(X)
    dx, dh0 = gru.backward(None, np.ones_like(h_n))
    assert dx.shape == X.shape and np.abs(dx).max() > 0


@pytest.mark.parametrize("layer", [fastgru.GRU(3, 4, seed=0), fastgru.nn.Linear(3, 4, seed=0)])
def test_train_must_be_a_bool(layer):
    x = np.zeros((5, 2, 3), np.float32)
    with pytest.raises(TypeError, match=r"train must be True or False, got str 'yes'"):
        layer.forward(x, train="yes")


@pytest.mark.parametrize("seed,err,msg", [
    ("a", TypeError, r"seed must be None, an int >= 0 or a np.random.SeedSequence, got str 'a'"),
    (1.5, TypeError, r"seed must be .* got float 1.5"),
    (True, TypeError, r"seed must be .* got bool True"),
    (-1, ValueError, r"seed must be an int >= 0, got -1"),
])
@pytest.mark.parametrize("make", [
    lambda s: fastgru.GRU(3, 4, seed=s), lambda s: fastgru.GRUCell(3, 4, seed=s),
    lambda s: fastgru.nn.Linear(3, 4, seed=s), lambda s: fastgru.nn.GRUModel(seed=s)])
def test_bad_seeds_are_named(make, seed, err, msg):
    with pytest.raises(err, match=msg):
        make(seed)


@pytest.mark.parametrize("seed", [None, 0, np.int64(7), np.random.SeedSequence(3),
                                  np.random.default_rng(5)])
def test_good_seeds(seed):
    fastgru.GRU(3, 4, seed=seed)
    fastgru.nn.GRUModel(seed=seed)


def test_ragged_x_is_named(gru):
    with pytest.raises(ValueError, match=r"x must be an array of numbers .* got a list"):
        gru([[[1.0, 2.0, 3.0]], [[1.0, 2.0]]])
    with pytest.raises(ValueError, match=r"lengths must be an array of numbers"):
        gru(X, lengths=[[1], [1, 2]])


def test_torch_tensors_of_any_float_type(gru):
    torch = pytest.importorskip("torch")
    want, _ = gru(X)
    for dt in (torch.bfloat16, torch.float16, torch.float32):
        out, _ = gru(torch.zeros(5, 2, 3, dtype=dt, requires_grad=True))
        assert out.dtype == np.float32
        np.testing.assert_array_equal(out, want)
    with pytest.raises(ValueError, match=r"x is a tensor on the 'meta' device"):
        gru(torch.empty(5, 2, 3, device="meta"))


def _edited(cache, **changes):
    """cache with fields of its layer, its saved arrays or its own replaced."""
    parts = {part: {k: changes.pop(k) for k in list(changes) if k in getattr(cache, part)._fields}
             for part in ("layer", "saved")}
    return cache._replace(layer=cache.layer._replace(**parts["layer"]),
                          saved=cache.saved._replace(**parts["saved"]), **changes)


@pytest.mark.parametrize("edit,msg", [
    (lambda c: dict(lengths=c.layer.lengths[:1]), r"cache.lengths must be the \(3,\) int64"),
    (lambda c: dict(lengths=c.layer.lengths.astype(np.int32)), r"cache.lengths must be"),
    (lambda c: dict(lengths=c.layer.lengths + 9), r"values in \[0, 5\]"),
    (lambda c: dict(h_prev=c.saved.h_prev[:2]), r"cache.h_prev has shape \(2, 3, 6\)"),
    (lambda c: dict(gates=c.saved.gates[:, :, :5]), r"cache.gates must be the C-contiguous .* strided"),
    (lambda c: dict(gates=c.saved.gates[:, :2].copy()), r"cache.gates has shape \(5, 2, 18\)"),
    (lambda c: dict(aux=c.saved.aux.astype(np.float32)), r"cache.aux has shape .* float32"),
    (lambda c: dict(w_hh=c.layer.w_hh[:, :5].copy()), r"cache.w_hh has shape \(18, 5\)"),
    (lambda c: dict(x=c.layer.x[0]), r"wrong number of dimensions"),
    (lambda c: dict(x=None), r"cache.x must be the C-contiguous float array"),
    (lambda c: dict(reverse="no"), r"cache.reverse and cache.reset_after must be bools"),
    (lambda c: dict(backend="torch"), r"cache.backend must be one of"),
])
def test_edited_cache_is_refused(backend, edit, msg):
    """The kernels trust the cache: an edited one must be refused, not read out of bounds."""
    rng = np.random.default_rng(0)
    T, B, I, H = 5, 3, 4, 6
    _, _, cache = fastgru.gru_forward(rng.random((T, B, I)), None, rng.random((3 * H, I)),
                                      rng.random((3 * H, H)), None, None, lengths=[5, 3, 4],
                                      need_cache=True)
    with pytest.raises(ValueError, match=msg):
        fastgru.gru_backward(None, np.ones((B, H)), _edited(cache, **edit(cache)))
    fastgru.gru_backward(None, np.ones((B, H)), cache)   # the unedited cache still works


def test_parameter_data_is_checked_when_assigned():
    """Layers hand .data to the kernels as it is: assignment is where it is checked."""
    gru = fastgru.GRU(3, 4, seed=0)
    p = gru.weight_hh_l0
    with pytest.raises(ValueError, match=r"Parameter.data must have shape \(12, 4\), got \(4, 12\)"):
        p.data = np.zeros((4, 12), np.float32)
    with pytest.raises(TypeError, match=r"Parameter.data must hold real floating-point"):
        p.data = np.zeros((12, 4), np.int64)
    p.data = np.asfortranarray(np.ones((12, 4)))        # float64, Fortran order: cast, made C
    assert p.data.dtype == np.float32 and p.data.flags.c_contiguous
    same = p.data
    p.data -= 1                                          # an optimizer's in-place update
    assert p.data is same and not p.data.any()
    fastgru.GRU(3, 4)(np.zeros((2, 1, 3), np.float32))


def test_cell_train_must_be_a_bool():
    with pytest.raises(TypeError, match=r"train must be True or False, got str 'yes'"):
        fastgru.GRUCell(3, 4).forward(np.zeros((2, 3), np.float32), train="yes")
