"""fastgru.dask on a LocalCluster of 2 worker processes: blockwise inference equal to the
in-memory call (bitwise on the batch-invariant compiled backends), the model sent once,
and a GridSearchCV spread over the workers through joblib's Dask backend."""
import time

import numpy as np
import pytest

da = pytest.importorskip("dask.array")
distributed = pytest.importorskip("distributed")
cloudpickle = pytest.importorskip("cloudpickle")

import fastgru  # noqa: E402
import fastgru.dask  # noqa: E402

from helpers import BACKEND_TOL  # noqa: E402

# the estimators' ConvergenceWarning (a UserWarning) at these few epochs
pytestmark = pytest.mark.filterwarnings("ignore:Stochastic Optimizer:UserWarning")


@pytest.fixture(scope="module")
def client():
    """2 worker processes, 1 thread each (the test machine has 2 cores)."""
    start = time.perf_counter()
    cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                       dashboard_address=None)
    with distributed.Client(cluster) as c:
        c.run(fastgru.set_num_threads, 1)
        print(f"LocalCluster with 2 worker processes up in {time.perf_counter() - start:.1f} s")
        yield c
    cluster.close()


@pytest.fixture
def same_backend(client, backend):
    """The workers compute on the backend this test runs on (the default is their own)."""
    before = client.run(fastgru.get_backend)
    client.run(fastgru.set_backend, backend)
    yield backend
    for address, name in before.items():
        client.run(fastgru.set_backend, name, workers=[address])


def assert_matches(actual, expected, backend):
    """Bitwise on the compiled backends; the numerical contract on the NumPy reference,
    which is not promised batch-invariant."""
    assert actual.shape == expected.shape and actual.dtype == expected.dtype
    if backend in ("numba", "cython"):
        np.testing.assert_array_equal(actual, expected)
    else:
        scale = max(1.0, float(np.abs(expected).max()))
        assert np.abs(actual - expected).max() <= BACKEND_TOL[expected.dtype] * scale


@pytest.mark.parametrize("batch_first", [True, False])
def test_gru_out_on_the_cluster_equals_the_in_memory_call(client, same_backend, rng, dtype,
                                                          batch_first):
    gru = fastgru.GRU(3, 12, num_layers=2, bidirectional=True, batch_first=batch_first,
                      dtype=dtype, seed=0)
    x = rng.standard_normal((9, 20, 3) if batch_first else (20, 9, 3)).astype(dtype)
    # samples in uneven chunks, and T cut in two: predict joins T back into whole sequences
    chunks = ((4, 2, 3), (10, 10), 3) if batch_first else ((10, 10), (4, 2, 3), 3)
    expected = gru(x)[0]        # first: compiles (or loads) the kernels the workers load too
    result = fastgru.dask.predict(gru, da.from_array(x, chunks=chunks))
    assert result.shape == ((9, 20, 24) if batch_first else (20, 9, 24))
    start = time.perf_counter()
    out = result.compute()
    print(f"GRU out, 3 chunks, 2 workers, {same_backend}: {time.perf_counter() - start:.2f} s")
    assert_matches(out, expected, same_backend)


def test_estimators_on_the_cluster_equal_the_in_memory_call(client, same_backend, rng):
    pytest.importorskip("sklearn")
    from fastgru.sklearn import GRUClassifier, GRURegressor
    X = rng.standard_normal((120, 8, 2))
    y = X[:, -2:, 0].sum(axis=1)
    chunked = da.from_array(X, chunks=(25, 4, 2))
    reg = GRURegressor(hidden_size=6, max_iter=5, random_state=0).fit(X, y)
    assert_matches(fastgru.dask.predict(reg, chunked).compute(), reg.predict(X), same_backend)
    two = GRURegressor(hidden_size=6, max_iter=5, random_state=0).fit(X, np.stack([y, -y], 1))
    assert_matches(fastgru.dask.predict(two, chunked).compute(), two.predict(X), same_backend)
    labels = np.where(y > 0, "up", "down")
    clf = GRUClassifier(hidden_size=6, max_iter=5, random_state=0).fit(X, labels)
    np.testing.assert_array_equal(fastgru.dask.predict(clf, chunked).compute(), clf.predict(X))
    flat = reg.fit(X[:, :, 0], y)           # (n, T) univariate sequences
    assert_matches(fastgru.dask.predict(flat, da.from_array(X[:, :, 0], chunks=(30, 8)))
                   .compute(), flat.predict(X[:, :, 0]), same_backend)
    model = fastgru.nn.GRUModel(2, 5, 3, dtype="float64", seed=0)
    assert_matches(fastgru.dask.predict(model, chunked).compute(), model.predict(X), same_backend)


def test_the_graph_holds_the_model_once(rng):
    """One graph entry carries the weights, whatever the number of chunks; every task reads
    it by key (passing the model itself to map_blocks would pickle it into each task)."""
    gru = fastgru.GRU(4, 64, batch_first=True, seed=0)
    model_bytes = len(cloudpickle.dumps(gru))
    x = rng.standard_normal((64, 5, 4)).astype(np.float32)
    for n_chunks in (2, 8):
        graph = dict(fastgru.dask.predict(gru, da.from_array(x, chunks=(64 // n_chunks, 5, 4)))
                     .__dask_graph__())
        sizes = [len(cloudpickle.dumps(task)) for task in graph.values()]
        assert sum(size > model_bytes // 2 for size in sizes) == 1, sorted(sizes)
        assert sum(sizes) < model_bytes + 2 * x.nbytes + 2000 * len(sizes)


def executed(dask_worker):
    return dask_worker.state.executed_count


def test_grid_search_runs_on_the_cluster_through_joblib(client):
    joblib = pytest.importorskip("joblib")
    pytest.importorskip("sklearn")
    from sklearn.model_selection import GridSearchCV

    from fastgru.sklearn import GRURegressor
    rng = np.random.default_rng(0)
    X = rng.standard_normal((80, 6))
    y = X[:, -2:].sum(axis=1)
    grid = {"hidden_size": [4, 8], "learning_rate_init": [0.01, 0.03]}
    est = GRURegressor(max_iter=20, random_state=0)   # fits long enough to be spread
    before = client.run(executed)
    start = time.perf_counter()
    with joblib.parallel_backend("dask"):
        on_cluster = GridSearchCV(est, grid, cv=2, n_jobs=-1).fit(X, y)
    seconds = time.perf_counter() - start
    ran = {w: n - before[w] for w, n in client.run(executed).items()}
    local = GridSearchCV(est, grid, cv=2).fit(X, y)
    print(f"GridSearchCV, 4 candidates x 2 folds on 2 workers: {seconds:.2f} s, "
          f"tasks per worker {sorted(ran.values())}")
    assert sum(ran.values()) >= 1              # the fits ran as tasks of the cluster
    assert on_cluster.best_params_ == local.best_params_
    np.testing.assert_array_equal(on_cluster.cv_results_["mean_test_score"],
                                  local.cv_results_["mean_test_score"])


def test_bad_input_is_a_clear_error(rng):
    gru = fastgru.GRU(3, 4, batch_first=True)
    x = da.from_array(rng.standard_normal((6, 5, 3)), chunks=(3, 5, 3))
    with pytest.raises(TypeError, match="X must be a dask.array.Array, got ndarray"):
        fastgru.dask.predict(gru, x.compute())
    with pytest.raises(ValueError, match=r"X must have 3 features \(input_size\)"):
        fastgru.dask.predict(gru, x[:, :, :2])
    with pytest.raises(ValueError, match="X must be 3-D"):
        fastgru.dask.predict(gru, x[:, :, 0])
    with pytest.raises(TypeError, match="model must be a fitted fastgru.sklearn estimator"):
        fastgru.dask.predict(object(), x)
