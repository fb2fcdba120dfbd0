"""fastgru's own product kernels for the Numba backend: register tiles written in
LLVM IR, because Numba's loops over arrays do not keep accumulators in registers
(a plain loop nest ran at 3-23 GFLOP/s here against OpenBLAS's 67).

The one primitive, ``tile(mr, nt, a, a_off, sa_r, sa_k, w, w_off, ldw, w_step, c, c_off,
ldc, K, cont)``, for one tile (nt = 1):

    c[c_off + i*ldc + j] = sum_k a[a_off + i*sa_r + k*sa_k] * w[w_off + k*ldw + j]
    for i < mr (1..4) and j < NR (16 float32 or 8 float64 columns, one 64-byte line)

and for nt tiles side by side, the tiles of w w_step elements apart: nt is 1 or
tiles_at_once(mr), chosen so that 8 vector accumulators keep two FMA pipes busy
(a tile row is one 512-bit vector with AVX-512, else two 256-bit ones: 1, 2, 3 and
4 rows take 8, 4, 2, 2 tiles at once, or 4, 2, 1, 1).

Each output element is one chain of fused multiply-adds over k = 0 .. K-1 from
zero, whatever mr, the tile's place or the caller's partition: so a row's result
does not depend on how many rows are computed with it (batch invariance) nor on
which thread computes it. Fused multiply-add (llvm.fma) is used where the machine
has FMA and multiply-then-add elsewhere; it is the only contraction anywhere in
fastgru (the C twin is fastgru_ext/_product.h). Nothing else here is fast-math.

``columns(c, w)`` is the padding unit: packed weights have a multiple of NR columns.
"""
import llvmlite.binding as llb
from llvmlite import ir
from numba import njit, types
from numba.core.errors import TypingError
from numba.extending import intrinsic

_FEATURES = llb.get_host_cpu_features().flatten().split(",")
HAS_FMA = "+fma" in _FEATURES
_LINE = 64   # bytes of one tile row: NR = 64 / itemsize
# vectors per tile row: one 512-bit vector where the host has AVX-512F (as the C
# extension's AVX-512 kernels), else two 256-bit ones. The lanes are independent
# chains, so the bits are the same either way.
_VPT = 1 if "+avx512f" in _FEATURES else 2


@njit(inline="always")
def nr_of(itemsize):
    """Columns per tile for elements of itemsize bytes."""
    return 64 // itemsize


def _make_tile(mr, nt):
    """The intrinsic for mr rows and nt tiles side by side (_VPT * nt vectors a row)."""
    @intrinsic
    def tile(typingctx, a, a_off, sa_r, sa_k, w, w_off, ldw, w_step, c, c_off, ldc, K, cont):
        for arr in (a, w, c):
            if not isinstance(arr, types.Array) or not isinstance(arr.dtype, types.Float):
                raise TypingError("tile: expected float arrays")
        if not (a.dtype == w.dtype == c.dtype):
            raise TypingError("tile: arrays of one dtype expected")
        sig = types.void(a, types.intp, types.intp, types.intp, w, types.intp, types.intp,
                         types.intp, c, types.intp, types.intp, types.intp, types.boolean)

        def codegen(context, builder, signature, args):
            (a_v, a_off_v, sa_r_v, sa_k_v, w_v, w_off_v, ldw_v, w_step_v, c_v, c_off_v, ldc_v,
             k_v, cont_v) = args
            ety = context.get_value_type(a.dtype)
            size = a.dtype.bitwidth // 8
            vl = _LINE // size // _VPT        # lanes of one vector
            nv = _VPT * nt                    # vectors per row of the product
            vty = ir.VectorType(ety, vl)
            i64 = ir.IntType(64)
            i32 = ir.IntType(32)
            a_ptr = context.make_array(a)(context, builder, a_v).data
            w_ptr = context.make_array(w)(context, builder, w_v).data
            c_ptr = context.make_array(c)(context, builder, c_v).data
            fma = None
            if HAS_FMA:
                name = f"llvm.fma.v{vl}f{a.dtype.bitwidth}"
                fma = builder.module.globals.get(name) or ir.Function(
                    builder.module, ir.FunctionType(vty, [vty, vty, vty]), name)

            def const(v):
                return ir.Constant(i64, v)

            def elem(ptr, idx):
                return builder.gep(ptr, [idx], source_etype=ety)

            def vptr(ptr, idx):
                return builder.bitcast(elem(ptr, idx), vty.as_pointer())

            zero = ir.Constant(vty, [ir.Constant(ety, 0.0)] * vl)
            mask = ir.Constant(ir.VectorType(i32, vl), [0] * vl)
            # vector v of a row: tile v // _VPT, part v % _VPT; in w, tiles are w_step
            # apart, in c side by side
            w_parts = [builder.add(builder.mul(const(v // _VPT), w_step_v),
                                   const((v % _VPT) * vl))
                       for v in range(nv)]
            c_rows = [builder.add(c_off_v, builder.mul(const(i), ldc_v)) for i in range(mr)]
            c_ptrs = [[vptr(c_ptr, builder.add(c_rows[i], const(v * vl))) for v in range(nv)]
                      for i in range(mr)]
            # the starting values: zero, or (cont) the tile's own, to continue its chains
            with builder.if_else(cont_v) as (then, otherwise):
                with then:
                    loaded = [[builder.load(p, align=size, typ=vty) for p in row] for row in c_ptrs]
                    then_block = builder.block
                with otherwise:
                    other_block = builder.block
            starts = []
            for i in range(mr):
                row = []
                for v in range(nv):
                    phi = builder.phi(vty)
                    phi.add_incoming(loaded[i][v], then_block)
                    phi.add_incoming(zero, other_block)
                    row.append(phi)
                starts.append(row)
            entry = builder.block
            loop = builder.append_basic_block("tile.loop")
            done = builder.append_basic_block("tile.done")
            builder.cbranch(builder.icmp_signed(">", k_v, const(0)), loop, done)

            builder.position_at_end(loop)
            k = builder.phi(i64)
            k.add_incoming(const(0), entry)
            accs = [[builder.phi(vty) for _ in range(nv)] for _ in range(mr)]
            for i in range(mr):
                for v in range(nv):
                    accs[i][v].add_incoming(starts[i][v], entry)
            w_row = builder.add(w_off_v, builder.mul(k, ldw_v))
            wv = [builder.load(vptr(w_ptr, builder.add(w_row, w_parts[v])), align=size, typ=vty)
                  for v in range(nv)]
            a_k = builder.add(a_off_v, builder.mul(k, sa_k_v))
            new = []
            for i in range(mr):
                a_i = builder.load(elem(a_ptr, builder.add(a_k, builder.mul(const(i), sa_r_v))),
                                   typ=ety)
                splat = builder.shuffle_vector(
                    builder.insert_element(ir.Constant(vty, ir.Undefined), a_i, ir.Constant(i32, 0)),
                    ir.Constant(vty, ir.Undefined), mask)
                row = []
                for v in range(nv):
                    if fma is not None:
                        row.append(builder.call(fma, [splat, wv[v], accs[i][v]]))
                    else:
                        row.append(builder.fadd(builder.fmul(splat, wv[v]), accs[i][v]))
                new.append(row)
            k_next = builder.add(k, const(1))
            body_end = builder.block
            k.add_incoming(k_next, body_end)
            for i in range(mr):
                for v in range(nv):
                    accs[i][v].add_incoming(new[i][v], body_end)
            builder.cbranch(builder.icmp_signed("<", k_next, k_v), loop, done)

            builder.position_at_end(done)
            results = []
            for i in range(mr):
                for v in range(nv):
                    res = builder.phi(vty)
                    res.add_incoming(starts[i][v], entry)
                    res.add_incoming(new[i][v], body_end)
                    results.append(res)
            for i in range(mr):
                for v in range(nv):
                    builder.store(results[nv * i + v], c_ptrs[i][v], align=size)
            return context.get_dummy_value()
        return sig, codegen
    return tile


# tiles side by side for 1, 2, 3 and 4 rows: 8 vector accumulators or more where
# the rows allow, so that two FMA pipes (4 cycles of latency each) are kept busy
_AT_ONCE = (8, 4, 2, 2) if _VPT == 1 else (4, 2, 1, 1)
_t1n, _t2n, _t3n, _t4n = (_make_tile(m, _AT_ONCE[m - 1]) for m in (1, 2, 3, 4))
_t1x1, _t2x1, _t3x1, _t4x1 = (_make_tile(m, 1) for m in (1, 2, 3, 4))
_N1, _N2, _N3, _N4 = _AT_ONCE


@njit(inline="always")
def tiles_at_once(mr):
    """How many tiles side by side the kernel for mr rows takes at once."""
    return _N1 if mr == 1 else (_N2 if mr == 2 else (_N3 if mr == 3 else _N4))


@njit(inline="always")
def tile(mr, nt, a, a_off, sa_r, sa_k, w, w_off, ldw, w_step, c, c_off, ldc, K, cont):
    """c's mr x (nt * NR) block := the products over K (see the module docstring);
    mr in 1..4, nt either tiles_at_once(mr) or 1; the nt tiles of w are w_step
    elements apart, those of c side by side. With cont, the chains start from the
    block's values instead of zero: a product cut into K blocks, each continuing
    the last, gives the same bits as one."""
    if mr >= 4:
        if nt > 1:
            _t4n(a, a_off, sa_r, sa_k, w, w_off, ldw, w_step, c, c_off, ldc, K, cont)
        else:
            _t4x1(a, a_off, sa_r, sa_k, w, w_off, ldw, w_step, c, c_off, ldc, K, cont)
    elif mr == 3:
        if nt > 1:
            _t3n(a, a_off, sa_r, sa_k, w, w_off, ldw, w_step, c, c_off, ldc, K, cont)
        else:
            _t3x1(a, a_off, sa_r, sa_k, w, w_off, ldw, w_step, c, c_off, ldc, K, cont)
    elif mr == 2:
        if nt > 1:
            _t2n(a, a_off, sa_r, sa_k, w, w_off, ldw, w_step, c, c_off, ldc, K, cont)
        else:
            _t2x1(a, a_off, sa_r, sa_k, w, w_off, ldw, w_step, c, c_off, ldc, K, cont)
    elif nt > 1:
        _t1n(a, a_off, sa_r, sa_k, w, w_off, ldw, w_step, c, c_off, ldc, K, cont)
    else:
        _t1x1(a, a_off, sa_r, sa_k, w, w_off, ldw, w_step, c, c_off, ldc, K, cont)
