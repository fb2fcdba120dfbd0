"""The one synchronisation the Numba kernels need: a spinning barrier for a team
of threads, with atomics written in LLVM IR (Numba has none).

``sync`` is an int64 array of at least 16 elements, zeroed before a team starts:
sync[0] counts arrivals; sync[8] (a separate cache line) holds the generation in
its first 32 bits (the futex word), sync[9] the number of sleeping waiters. The C
twin is ``fastgru_ext/_sync.h``.
"""
import os
import platform

from llvmlite import ir
from numba import njit, types
from numba.core.errors import TypingError
from numba.extending import intrinsic

_X86 = platform.machine().lower() in ("x86_64", "amd64", "i686", "x86")
_HAS_YIELD = os.name == "posix"     # sched_yield is in every POSIX libc
# How a waiting thread waits (as fastgru_ext/_sync.h): it spins (a step is 10 us to
# 1 ms of work, and a spinning thread wakes at once), then sleeps on a futex until
# the last arrival wakes it (Linux; elsewhere it yields its core in a loop).
# Sleeping matters on a machine busy with other processes: a teammate may be
# waiting for a core, and a sleeping thread frees one.
_SPINS = 4000


def _pause(builder):
    return builder.module.globals.get("llvm.x86.sse2.pause") or ir.Function(
        builder.module, ir.FunctionType(ir.VoidType(), []), "llvm.x86.sse2.pause")


def _slot(context, builder, arr_t, arr, idx):
    data = context.make_array(arr_t)(context, builder, arr).data
    return builder.gep(data, [idx], source_etype=ir.IntType(64))


def _check(arr):
    if not (isinstance(arr, types.Array) and arr.dtype == types.int64):
        raise TypingError("expected an int64 array")


@intrinsic
def atomic_add(typingctx, arr, idx, value):
    """arr[idx] += value atomically (sequentially consistent); returns the old value."""
    _check(arr)

    def codegen(context, builder, sig, args):
        return builder.atomic_rmw("add", _slot(context, builder, arr, args[0], args[1]),
                                  args[2], "seq_cst")
    return types.int64(arr, types.intp, types.int64), codegen


@intrinsic
def atomic_store(typingctx, arr, idx, value):
    """arr[idx] = value, atomically (sequentially consistent)."""
    _check(arr)

    def codegen(context, builder, sig, args):
        builder.store_atomic(args[2], _slot(context, builder, arr, args[0], args[1]),
                             "seq_cst", 8)
        return context.get_dummy_value()
    return types.void(arr, types.intp, types.int64), codegen


@intrinsic
def cpu_relax(typingctx):
    """The spin-wait hint (x86 pause); nothing elsewhere."""
    def codegen(context, builder, sig, args):
        if _X86:
            builder.call(_pause(builder), [])
        return context.get_dummy_value()
    return types.void(), codegen


_SYS_FUTEX = {"x86_64": 202, "amd64": 202, "aarch64": 98, "arm64": 98, "ppc64le": 221,
              "s390x": 238}.get(platform.machine().lower()) if platform.system() == "Linux" else None
_FUTEX_WAIT_PRIVATE, _FUTEX_WAKE_PRIVATE = 128, 129


def _generation_word(context, builder, arr_t, arr):
    """sync[8] as a 32-bit word: the generation, and the futex word."""
    return builder.bitcast(_slot(context, builder, arr_t, arr, ir.Constant(ir.IntType(64), 8)),
                           ir.IntType(32).as_pointer())


@intrinsic
def generation(typingctx, arr):
    """The team's generation (32 bits), read atomically."""
    _check(arr)

    def codegen(context, builder, sig, args):
        word = _generation_word(context, builder, arr, args[0])
        return builder.sext(builder.load_atomic(word, "seq_cst", 4, typ=ir.IntType(32)),
                            ir.IntType(64))
    return types.int64(arr), codegen


def _futex(builder, word, op, value):
    i64 = ir.IntType(64)
    fn = builder.module.globals.get("syscall") or ir.Function(
        builder.module, ir.FunctionType(i64, [i64], var_arg=True), "syscall")
    null = ir.Constant(ir.IntType(8).as_pointer(), None)
    builder.call(fn, [ir.Constant(i64, _SYS_FUTEX), word, ir.Constant(ir.IntType(32), op),
                      value, null, null, ir.Constant(ir.IntType(32), 0)])


@intrinsic
def advance(typingctx, arr):
    """Bump the generation and wake the sleepers, if any (the last arrival)."""
    _check(arr)

    def codegen(context, builder, sig, args):
        word = _generation_word(context, builder, arr, args[0])
        builder.atomic_rmw("add", word, ir.Constant(ir.IntType(32), 1), "seq_cst")
        if _SYS_FUTEX is not None:
            sleepers = builder.load_atomic(
                _slot(context, builder, arr, args[0], ir.Constant(ir.IntType(64), 9)),
                "seq_cst", 8, typ=ir.IntType(64))
            with builder.if_then(builder.icmp_signed(">", sleepers, ir.Constant(ir.IntType(64), 0))):
                _futex(builder, word, _FUTEX_WAKE_PRIVATE, ir.Constant(ir.IntType(32), 2 ** 31 - 1))
        return context.get_dummy_value()
    return types.void(arr), codegen


@intrinsic
def sleep_while(typingctx, arr, gen):
    """Sleep until the generation differs from gen: on the futex (Linux, counted in
    sync[9] so that the last arrival knows to wake), else yielding the core."""
    _check(arr)

    def codegen(context, builder, sig, args):
        word = _generation_word(context, builder, arr, args[0])
        i32, i64 = ir.IntType(32), ir.IntType(64)
        expected = builder.trunc(args[1], i32)
        sleepers = _slot(context, builder, arr, args[0], ir.Constant(i64, 9))
        if _SYS_FUTEX is not None:
            builder.atomic_rmw("add", sleepers, ir.Constant(i64, 1), "seq_cst")
        loop = builder.append_basic_block("nap.loop")
        body = builder.append_basic_block("nap.body")
        done = builder.append_basic_block("nap.done")
        builder.branch(loop)
        builder.position_at_end(loop)
        now = builder.load_atomic(word, "seq_cst", 4, typ=i32)
        builder.cbranch(builder.icmp_signed("==", now, expected), body, done)
        builder.position_at_end(body)
        if _SYS_FUTEX is not None:
            _futex(builder, word, _FUTEX_WAIT_PRIVATE, expected)
        elif _HAS_YIELD:
            fn = builder.module.globals.get("sched_yield") or ir.Function(
                builder.module, ir.FunctionType(i32, []), "sched_yield")
            builder.call(fn, [])
        elif _X86:
            builder.call(_pause(builder), [])
        builder.branch(loop)
        builder.position_at_end(done)
        if _SYS_FUTEX is not None:
            builder.atomic_rmw("sub", sleepers, ir.Constant(i64, 1), "seq_cst")
        return context.get_dummy_value()
    return types.void(arr, types.int64), codegen


@njit(nogil=True)
def barrier(sync, nthreads):
    """Wait until all nthreads threads of the team have arrived (nothing for one).

    Sense by generation: read it, arrive; the last to arrive resets the count,
    bumps the generation and wakes the sleepers; the others wait for the bump
    (see _SPINS)."""
    if nthreads <= 1:
        return
    gen = generation(sync)
    if atomic_add(sync, 0, 1) == nthreads - 1:
        atomic_store(sync, 0, 0)
        advance(sync)
        return
    for _ in range(_SPINS):
        if generation(sync) != gen:
            return
        cpu_relax()
    sleep_while(sync, gen)
