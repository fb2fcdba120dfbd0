"""The peers' runners: torch.nn.GRU, ONNX Runtime and OpenVINO (on ``fastgru.onnx.export``'s
one-node graph) and JAX (``bench/jax_gru.py``), each at ``bench.threads.count()`` threads.
Each ``build_<peer>(case, op, p)`` returns a ``Runner`` or raises ``Unsupported``."""
import time

import numpy as np

from . import threads
from .grid import FORWARD, FORWARD_BACKWARD, STEP
from .runner import Runner, Unsupported
from .runner import load as _load

# ---------------------------------------------------------------- torch

def build_torch(case, op, p):
    torch = _load("torch")
    threads.apply_torch(torch)
    if case.reset != "after":
        raise Unsupported("torch.nn.GRU has only reset='after'")
    dt = {"float32": torch.float32, "float64": torch.float64}[case.dtype]
    if case.cell:
        m = torch.nn.GRUCell(case.I, case.H, dtype=dt)
    else:
        m = torch.nn.GRU(case.I, case.H, num_layers=case.num_layers,
                         bidirectional=case.bidirectional, dtype=dt)
    m.load_state_dict({k: torch.from_numpy(v.copy()) for k, v in p.params.items()})
    x, h0 = torch.from_numpy(p.x.copy()), torch.from_numpy(p.h0.copy())
    if op == STEP:
        return Runner("torch", lambda: m(x, h0), lambda h: {"h": h.numpy()},
                      context=torch.inference_mode)
    pack = torch.nn.utils.rnn
    lengths = None if p.lengths is None else torch.from_numpy(p.lengths)

    def run(x):
        if lengths is None:
            return m(x, h0)
        packed = pack.pack_padded_sequence(x, lengths, enforce_sorted=False)
        out, h_n = m(packed, h0)
        return pack.pad_packed_sequence(out, total_length=case.T)[0], h_n

    if op == FORWARD:
        return Runner("torch", lambda: run(x), lambda r: {"out": r[0].numpy(), "h_n": r[1].numpy()},
                      context=torch.inference_mode)
    x.requires_grad_(True)
    d_out = torch.from_numpy(p.d_out.copy())
    named = list(m.named_parameters())

    def forward_backward():
        x.grad = None
        for _, q in named:
            q.grad = None
        run(x)[0].backward(d_out)

    return Runner("torch", forward_backward, lambda _: dict(
        dx=x.grad.numpy(), **{k: q.grad.numpy() for k, q in named}))


# ---------------------------------------------------------------- ONNX Runtime

def onnx_gru_model(case, params):
    """``fastgru.onnx.export``'s model of a GRU holding ``params`` (one ONNX GRU node per layer).

    Inputs ``input`` (T, B, I), ``h0`` (L*D, B, H) and, with lengths, ``lengths`` (B,) int32;
    outputs ``output`` (T, B, D*H) and ``h_n`` (L*D, B, H). The exporter is fastgru's
    Python and the onnx package: no fastgru kernel is loaded into a peer's process.
    """
    _load("onnx")
    fastgru_onnx = _load("fastgru.onnx")
    gru = _load("fastgru").GRU(case.I, case.H, num_layers=case.num_layers,
                               bidirectional=case.bidirectional, reset=case.reset,
                               dtype=case.dtype)
    gru.load_state_dict(params)
    model = fastgru_onnx.export(gru, h0=True, lengths=case.lengths)
    model.ir_version = min(model.ir_version, 8)    # readable by older onnxruntime too
    # the case's sizes for the symbolic "time" and "batch": OpenVINO (2026.4) ignores a GRU's
    # sequence_lens when they are symbolic (outputs past the lengths are then not 0)
    sizes = {"time": case.T, "batch": case.B}
    for value in list(model.graph.input) + list(model.graph.output):
        for dim in value.type.tensor_type.shape.dim:
            if dim.dim_param in sizes:
                dim.dim_value = sizes[dim.dim_param]    # clears dim_param (a oneof)
    return model


def _onnx_problem(case, p):
    """The ONNX model's case (a one-step sequence for a cell), torch-named weights, feeds."""
    if case.cell:   # one step of a one-layer GRU
        from .grid import Case
        seq = Case(case.name, 1, case.B, case.I, case.H, case.dtype, reset=case.reset)
        names = _load("fastgru.nn").parameter_names
        params = dict(zip(names(0), (p.params[name] for name in names())))
        feeds = {"input": p.x[None], "h0": p.h0[None]}
    else:
        seq, params = case, p.params
        feeds = {"input": p.x, "h0": p.h0}
        if case.lengths:
            feeds["lengths"] = p.lengths.astype(np.int32)
    return seq, params, feeds


def _onnx_collect(case):
    """The ONNX model's outputs [output, h_n] -> the names checked."""
    def collect(r):
        if case.cell:
            return {"h": r[1][0]}
        return {"out": r[0], "h_n": r[1]}
    return collect


def _first_line(exc):
    return f"{type(exc).__name__}: {(str(exc).strip().splitlines() or [''])[0][:200]}"


def build_onnxruntime(case, op, p):
    if op == FORWARD_BACKWARD:
        raise Unsupported("ONNX Runtime has no backward pass")
    ort = _load("onnxruntime")
    ort.set_default_logger_severity(3)   # failures become skips; don't print them too
    seq, params, feeds = _onnx_problem(case, p)
    try:
        sess = ort.InferenceSession(onnx_gru_model(seq, params).SerializeToString(),
                                    threads.ort_session_options(ort),
                                    providers=["CPUExecutionProvider"])
        sess.run(None, feeds)   # some kernels fail only when run ("does not support double yet")
    except Exception as exc:
        raise Unsupported(f"onnxruntime cannot run it: {_first_line(exc)}") from None
    return Runner("onnxruntime", lambda: sess.run(None, feeds), _onnx_collect(case),
                  info={"intra_op_num_threads": threads.count()})


# ---------------------------------------------------------------- OpenVINO

def build_openvino(case, op, p):
    """The ONNX Runtime model (one GRU node per layer), read and compiled by OpenVINO for its CPU."""
    if op == FORWARD_BACKWARD:
        raise Unsupported("OpenVINO has no backward pass")
    if case.dtype != "float32":
        raise Unsupported("OpenVINO is timed in float32 only")
    ov = _load("openvino")
    seq, params, feeds = _onnx_problem(case, p)
    try:
        core = ov.Core()
        model = core.read_model(onnx_gru_model(seq, params).SerializeToString())
        compiled = core.compile_model(model, "CPU", threads.openvino_config())
        request = compiled.create_infer_request()
        request.infer(feeds)
    except Unsupported:
        raise
    except Exception as exc:
        raise Unsupported(f"openvino cannot run it: {_first_line(exc)}") from None
    outputs = list(compiled.outputs)
    info = {}
    for prop in ("INFERENCE_NUM_THREADS", "INFERENCE_PRECISION_HINT", "PERFORMANCE_HINT",
                 "NUM_STREAMS"):
        try:
            value = compiled.get_property(prop)
            info[prop] = value.get_type_name() if hasattr(value, "get_type_name") else str(value)
        except Exception:   # a property this version does not report
            pass
    collect = _onnx_collect(case)
    return Runner("openvino", lambda: request.infer(feeds),
                  lambda r: collect([r[o] for o in outputs]), info=info)


# ---------------------------------------------------------------- JAX

def build_jax(case, op, p):
    jax = _load("jax")
    from . import jax_gru as jgru
    jnp = jax.numpy
    params = {k: jnp.asarray(v) for k, v in p.params.items()}
    x, h0 = jnp.asarray(p.x), jnp.asarray(p.h0)
    after = case.reset == "after"
    if op == STEP:
        args = (params, x, h0)
        f = jax.jit(lambda params, x, h: jgru.cell(params, x, h, after))

        def collect(h):
            return {"h": np.asarray(h)}
    else:
        mask = None
        if case.lengths:
            mask = jnp.asarray((np.arange(case.T)[:, None] < p.lengths[None, :])[..., None])

        def forward(params, x):
            return jgru.gru(params, x, h0, mask, case.num_layers, case.bidirectional, after)

        if op == FORWARD:
            args = (params, x)
            f = jax.jit(forward)

            def collect(r):
                return {"out": np.asarray(r[0]), "h_n": np.asarray(r[1])}
        else:
            d_out = jnp.asarray(p.d_out)
            args = (params, x)
            f = jax.jit(jax.grad(lambda params, x: jnp.sum(forward(params, x)[0] * d_out),
                                 argnums=(0, 1)))

            def collect(g):
                return dict(dx=np.asarray(g[1]), **{k: np.asarray(v) for k, v in g[0].items()})
    t0 = time.perf_counter()
    compiled = f.lower(*args).compile()
    compile_s = time.perf_counter() - t0
    return Runner("jax", lambda: jax.block_until_ready(compiled(*args)), collect,
                  compile_s=compile_s)
