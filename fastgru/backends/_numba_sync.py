"""The one synchronisation the Numba kernels need: a spinning barrier for a team
of threads, with atomics written in LLVM IR (Numba has none).

``sync`` is an int64 array of at least 16 elements, zeroed before a team starts:
sync[0] counts arrivals, sync[8] is the generation (a separate cache line). The
C twin is ``fastgru_ext/_sync.h``.
"""
import os
import platform

from llvmlite import ir
from numba import njit, types
from numba.core.errors import TypingError
from numba.extending import intrinsic

_X86 = platform.machine().lower() in ("x86_64", "amd64", "i686", "x86")
_HAS_YIELD = os.name == "posix"     # sched_yield is in every POSIX libc
_SPINS = 4000   # pauses before a waiting thread starts yielding its core


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
def atomic_load(typingctx, arr, idx):
    """arr[idx], read atomically (sequentially consistent)."""
    _check(arr)

    def codegen(context, builder, sig, args):
        return builder.load_atomic(_slot(context, builder, arr, args[0], args[1]),
                                   "seq_cst", 8, typ=ir.IntType(64))
    return types.int64(arr, types.intp), codegen


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


@intrinsic
def _give_way(typingctx):
    """Yield the core (sched_yield, by symbol: the compiled code stays cacheable);
    a pause where there is no sched_yield."""
    def codegen(context, builder, sig, args):
        if _HAS_YIELD:
            fn = builder.module.globals.get("sched_yield") or ir.Function(
                builder.module, ir.FunctionType(ir.IntType(32), []), "sched_yield")
            builder.call(fn, [])
        elif _X86:
            builder.call(_pause(builder), [])
        return context.get_dummy_value()
    return types.void(), codegen


@njit(nogil=True)
def barrier(sync, nthreads):
    """Wait until all nthreads threads of the team have arrived (nothing for one).

    Sense by generation: read it, arrive; the last to arrive resets the count and
    bumps the generation, the others wait for the bump (spinning, then yielding
    the core so that an oversubscribed machine still makes progress)."""
    if nthreads <= 1:
        return
    generation = atomic_load(sync, 8)
    if atomic_add(sync, 0, 1) == nthreads - 1:
        atomic_store(sync, 0, 0)
        atomic_add(sync, 8, 1)
        return
    spins = 0
    while atomic_load(sync, 8) == generation:
        if spins < _SPINS:
            cpu_relax()
            spins += 1
        else:
            _give_way()
