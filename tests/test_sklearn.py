"""fastgru.sklearn: scikit-learn's own estimator checks, the ecosystem's tools (clone,
Pipeline, GridSearchCV, cross_val_score), fresh and warm fits, reproducibility, validation."""
import pickle
import warnings

import numpy as np
import pytest

pytest.importorskip("sklearn")
from sklearn.base import clone  # noqa: E402
from sklearn.exceptions import ConvergenceWarning, NotFittedError  # noqa: E402
from sklearn.model_selection import GridSearchCV, cross_val_score  # noqa: E402
from sklearn.pipeline import make_pipeline  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402
from sklearn.utils.estimator_checks import parametrize_with_checks  # noqa: E402

from fastgru.demo import sine_windows  # noqa: E402
from fastgru.sklearn import GRUClassifier, GRURegressor  # noqa: E402

from helpers import run_script  # noqa: E402

# small and quick, yet good enough for the checks' score thresholds (R^2 > 0.5, accuracy > 0.83)
SMALL = dict(hidden_size=16, max_iter=100, learning_rate_init=0.01)
pytestmark = pytest.mark.filterwarnings("ignore:Stochastic Optimizer:UserWarning")


@parametrize_with_checks([GRURegressor(**SMALL), GRUClassifier(**SMALL)])
def test_scikit_learn_estimator_checks(estimator, check):
    check(estimator)


def sine(n=120):
    _, x, y, _, _ = sine_windows()
    return x[:n], y[:n]


def labelled(rng, n=90, T=6, I=2):
    """Three classes told apart by the sign and size of the sequences' mean."""
    y = rng.integers(0, 3, n)
    X = rng.standard_normal((n, T, I)) * 0.3 + (y - 1)[:, None, None]
    return X, np.array(["down", "flat", "up"])[y]


def test_import_fastgru_imports_neither_sklearn_nor_dask(tmp_path):
    result = run_script("""
        import json, sys
        import fastgru
        print(json.dumps({m: m in sys.modules for m in ("sklearn", "dask", "distributed")}))
    """, tmp_path)
    assert result == {"sklearn": False, "dask": False, "distributed": False}


def test_same_random_state_gives_bitwise_the_same_model():
    X, y = sine()
    fits = [GRURegressor(hidden_size=8, max_iter=5, batch_size=32, random_state=s).fit(X, y)
            for s in (3, 3, 4)]
    a, b, c = (f.model_.state_dict() for f in fits)
    assert all(np.array_equal(a[k], b[k]) for k in a)
    assert fits[0].loss_curve_ == fits[1].loss_curve_
    assert not all(np.array_equal(a[k], c[k]) for k in a)
    rs = np.random.RandomState(0)   # a RandomState instance is drawn from, as in sklearn
    first = GRURegressor(hidden_size=8, max_iter=2, random_state=rs).fit(X, y).predict(X)
    second = GRURegressor(hidden_size=8, max_iter=2, random_state=rs).fit(X, y).predict(X)
    assert not np.array_equal(first, second)


def test_fit_starts_fresh_unless_warm_start():
    X, y = sine()
    est = GRURegressor(hidden_size=8, max_iter=4, random_state=0)
    fresh = est.fit(X, y).predict(X)
    model = est.model_
    np.testing.assert_array_equal(est.fit(X, y).predict(X), fresh)
    assert est.model_ is not model and len(est.loss_curve_) == est.n_iter_ == 4
    warm = clone(est).set_params(warm_start=True).fit(X, y)
    first_curve = list(warm.loss_curve_)
    model = warm.model_
    warm.fit(X, y)
    assert warm.model_ is model                       # continued, not rebuilt
    assert warm.loss_curve_[0] < first_curve[0]       # from the trained weights
    assert not np.array_equal(warm.predict(X), fresh)
    with pytest.raises(ValueError, match="warm_start needs y with the 1 outputs"):
        warm.fit(X, np.stack([y, y], 1))


def test_clone_params_pipeline_grid_search_and_cross_val_score():
    X, y = sine(90)
    est = GRURegressor(hidden_size=6, max_iter=3, random_state=0)
    assert est.get_params()["hidden_size"] == 6 and est.get_params()["batch_size"] == "auto"
    copy = clone(est.set_params(hidden_size=5))
    assert copy.hidden_size == 5 and not hasattr(copy, "model_")
    pipe = make_pipeline(StandardScaler(), GRURegressor(hidden_size=6, max_iter=3, random_state=0))
    assert pipe.fit(X, y).predict(X).shape == (90,)
    search = GridSearchCV(est, {"hidden_size": [4, 6], "learning_rate_init": [0.01, 0.03]}, cv=2)
    search.fit(X, y)
    assert search.best_params_["hidden_size"] in (4, 6) and hasattr(search, "best_estimator_")
    scores = cross_val_score(GRUClassifier(hidden_size=6, max_iter=3, random_state=0),
                             *labelled(np.random.default_rng(0)), cv=3)
    assert scores.shape == (3,) and np.all((0 <= scores) & (scores <= 1))


def test_regressor_outputs_loss_and_defaults():
    X, y = sine()
    est = GRURegressor(hidden_size=12, max_iter=40, learning_rate_init=0.01, random_state=0)
    est.fit(X[:, :, None], y)                         # (n, T, 1) is the same as (n, T)
    assert est.predict(X).shape == (120,) and est.predict(X).dtype == np.float64
    assert est.score(X, y) > 0.9
    assert est.loss_curve_[-1] < est.loss_curve_[0] and est.n_iter_ == len(est.loss_curve_)
    assert est.t_ == 120 * est.n_iter_ and est.best_loss_ == min(est.loss_curve_)
    two = GRURegressor(hidden_size=4, max_iter=2, dtype="float32").fit(X, np.stack([y, -y], 1))
    assert two.predict(X).shape == (120, 2) and two.predict(X).dtype == np.float32
    assert two.n_outputs_ == 2 and two.input_size_ == 1 and two.n_features_in_ == 10
    from sklearn.neural_network import MLPRegressor
    ours, theirs = GRURegressor().get_params(), MLPRegressor().get_params()
    shared = set(ours) & set(theirs)
    assert shared >= {"max_iter", "batch_size", "learning_rate_init", "alpha", "early_stopping",
                      "validation_fraction", "n_iter_no_change", "tol", "random_state",
                      "warm_start", "verbose", "shuffle", "beta_1", "beta_2", "epsilon"}
    assert {k: ours[k] for k in shared} == {k: theirs[k] for k in shared}


def test_classifier_labels_probabilities_and_score(rng):
    X, y = labelled(rng)
    est = GRUClassifier(hidden_size=8, max_iter=60, learning_rate_init=0.02, random_state=0)
    est.fit(X, y)
    assert list(est.classes_) == ["down", "flat", "up"]
    proba = est.predict_proba(X)
    assert proba.shape == (90, 3)
    np.testing.assert_allclose(proba.sum(axis=1), 1, rtol=1e-12)
    np.testing.assert_array_equal(est.predict(X), est.classes_[proba.argmax(axis=1)])
    np.testing.assert_allclose(est.predict_log_proba(X), np.log(proba), rtol=1e-12)
    assert est.score(X, y) > 0.9
    with pytest.raises(ValueError, match=r"at least 2 classes in y; got 1 class: \['up'\]"):
        GRUClassifier(max_iter=1).fit(X, np.full(90, "up"))
    warm = GRUClassifier(hidden_size=4, max_iter=1, warm_start=True).fit(X, y)
    with pytest.raises(ValueError, match="same classes"):
        warm.fit(X[:30], np.where(y[:30] == "up", "flat", y[:30]))


def test_early_stopping_keeps_the_best_epoch(capsys):
    from sklearn.metrics import r2_score
    from sklearn.model_selection import train_test_split
    X, y = sine()
    est = GRURegressor(hidden_size=8, max_iter=200, early_stopping=True, n_iter_no_change=11,
                       tol=100.0, learning_rate_init=0.01, random_state=0, verbose=True)
    est.fit(X, y)
    assert est.n_iter_ == 13 < 200                   # only the first epoch counts as progress
    assert len(est.validation_scores_) == 13 and est.best_loss_ is None
    assert est.best_validation_score_ == max(est.validation_scores_)
    assert est.validation_scores_[-1] != est.best_validation_score_
    # the held-out split, drawn as fit draws it: the kept weights are the best epoch's
    split_seed = np.random.RandomState(0).randint(np.iinfo(np.int32).max, size=3)[1]
    _, X_val, _, y_val = train_test_split(X, y, test_size=0.1, random_state=int(split_seed))
    assert r2_score(y_val, est.predict(X_val)) == est.best_validation_score_
    out = capsys.readouterr().out
    assert "Iteration 1, loss = " in out and "Validation score: " in out
    assert "Validation score did not improve more than tol=100.000000 for 11" in out


def test_max_iter_warns_as_mlp_and_verbose_is_quiet_by_default(capsys):
    X, y = sine(40)
    with pytest.warns(ConvergenceWarning, match=r"Maximum iterations \(2\) reached"):
        GRURegressor(hidden_size=4, max_iter=2).fit(X, y)
    assert capsys.readouterr().out == ""


def test_inputs_are_validated_as_scikit_learn_does_and_never_modified():
    X, y = sine(30)
    X_before, y_before = X.copy(), y.copy()
    est = GRURegressor(hidden_size=4, max_iter=2, random_state=0)
    np.testing.assert_array_equal(est.fit(X, y).predict(X), est.predict(X.tolist()))
    np.testing.assert_array_equal(X, X_before)
    np.testing.assert_array_equal(y, y_before)
    ints = np.arange(60).reshape(6, 10)
    np.testing.assert_array_equal(est.predict(ints), est.predict(ints.astype(float)))
    bad = X.copy()
    bad[3, 4] = np.nan
    with pytest.raises(ValueError, match="Input X contains NaN"):
        clone(est).fit(bad, y)
    bad[3, 4] = np.inf
    with pytest.raises(ValueError, match="Input X contains infinity"):
        est.predict(bad)
    with pytest.raises(ValueError, match=r"X must hold at least one sequence \(n_samples >= 1\), "
                                         r"got shape \(0, 10\)"):
        clone(est).fit(X[:0], y[:0])
    with pytest.raises(ValueError, match="got 4-D with shape"):
        clone(est).fit(X.reshape(30, 5, 1, 2), y)
    with pytest.raises(ValueError, match="X has 9 features, but GRURegressor is expecting 10 "
                                         "features as input: X.shape"):
        est.predict(X[:, :9])
    with pytest.raises(ValueError, match="X has 2 features per step, but GRURegressor is "
                                         "expecting 1 features per step"):
        est.predict(np.ones((3, 10, 2)))
    with pytest.raises(NotFittedError):
        GRURegressor().predict(X)
    with pytest.raises(NotFittedError):
        GRUClassifier().predict_proba(X)


@pytest.mark.parametrize("param, value, error, message", [
    ("hidden_size", 0, ValueError, "hidden_size must be > 0, got 0"),
    ("batch_size", "big", TypeError, 'batch_size .an int > 0 or "auto". must be an int'),
    ("validation_fraction", 1.0, ValueError, r"validation_fraction must lie in \(0.0, 1.0\)"),
    ("dtype", "int8", TypeError, "dtype must be float32 or float64"),
    ("alpha", -1, ValueError, r"alpha must lie in \[0.0, inf\), got -1"),
    ("reset", "middle", ValueError, "reset must be"),
    ("early_stopping", "yes", TypeError, "early_stopping must be True or False"),
])
def test_bad_hyperparameters_fail_in_fit_not_init(param, value, error, message):
    X, y = sine(20)
    est = GRURegressor(**{param: value})             # scikit-learn: __init__ only stores
    assert est.get_params()[param] == value
    with pytest.raises(error, match=message):
        est.fit(X, y)


def test_fitted_estimator_pickles_to_the_same_predictions():
    X, y = sine(40)
    est = GRURegressor(hidden_size=6, max_iter=3, random_state=0).fit(X, y)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        again = pickle.loads(pickle.dumps(est))
    np.testing.assert_array_equal(again.predict(X), est.predict(X))
