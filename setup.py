"""Builds the Cython extension fastgru_ext._gru; everything else is in pyproject.toml.

The extension is plain C: its own product kernels (fastgru_ext/_product.h), its own
barrier (fastgru_ext/_sync.h), no OpenMP and no BLAS; fastgru's threads are Python
threads running its kernels without the GIL (fastgru/_threads.py).

Each optional compiler flag is used only if the compiler accepts it (checked by
compiling a small program), so the build works with gcc, clang and MSVC:

* -O3: vectorizes the elementwise loops (CFLAGS from the environment would
  otherwise decide, and may say -O2 or -O0).
* -fno-trapping-math: lets gcc if-convert the clamps in fastgru_ext/_math.pxd,
  and so vectorize the loops that use them. It assumes floating-point
  exceptions never trap (Python never enables FP traps) and changes no value.
* --param=vect-max-version-for-alias-checks=64: the per-row loops read and write
  several arrays; gcc's default allows too few runtime alias checks to vectorize them.
* -g0 and, when linking, --strip-all: no debug information and no symbol table in
  the shipped extension (Python's own CFLAGS often say -g; the debug sections made
  _gru.so four times larger: 2.3 MB, 0.51 MB without).
* -march=native, only with FASTGRU_NATIVE=1: everything compiled for the building
  machine (the binary may then crash with an illegal instruction elsewhere). The
  default build targets the compiler's baseline (x86-64: SSE2) and still runs the
  product kernels, where most of the time goes, with AVX2 + FMA or AVX-512: they are
  compiled once per instruction set (_product.h) and chosen at run time
  (fastgru.backends.cython_backend, FASTGRU_ISA).
* -ffp-contract=off: no fused multiply-adds the source does not ask for (gcc fuses
  by default where the target has FMA), so results do not depend on the target;
  the explicit fma intrinsics of _product.h are unaffected.

No -ffast-math: it would break fastgru's numerical contract.
"""
import os
import tempfile

from Cython.Build import cythonize
from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

PLAIN_TEST = "int main(void) { return 0; }\n"
SPEED_FLAGS = ["-O3", "-fno-trapping-math", "--param=vect-max-version-for-alias-checks=64",
               "-ffp-contract=off", "-g0"]
NATIVE_FLAGS = ["-march=native"]
STRIP_FLAGS = ["-Wl,--strip-all"]   # link only: no symbol table beyond what Python imports


def compiles(compiler, flags, source=PLAIN_TEST):
    """Whether ``compiler`` builds and links ``source`` with ``flags``."""
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "flag_test.c")
        with open(path, "w") as f:
            f.write(source)
        try:
            objects = compiler.compile([path], output_dir=tmp, extra_postargs=flags)
            compiler.link_executable(objects, "flag_test", output_dir=tmp, extra_postargs=flags)
        except Exception:  # CompileError, LinkError, or a missing compiler driver
            return False
    return True


class BuildExt(build_ext):
    def build_extensions(self):
        native = os.environ.get("FASTGRU_NATIVE", "") not in ("", "0")
        wanted = SPEED_FLAGS + (NATIVE_FLAGS if native else [])
        speed = [] if self.compiler.compiler_type == "msvc" else [
            flag for flag in wanted if compiles(self.compiler, [flag])]
        strip = [] if self.compiler.compiler_type == "msvc" else [
            flag for flag in STRIP_FLAGS if compiles(self.compiler, [flag])]
        for ext in self.extensions:
            ext.extra_compile_args += speed
            ext.extra_link_args += strip
        super().build_extensions()


extensions = [
    Extension("fastgru_ext._gru", ["fastgru_ext/_gru.pyx"], include_dirs=["fastgru_ext"],
              depends=["fastgru_ext/_product.h", "fastgru_ext/_product_variant.h",
                       "fastgru_ext/_sync.h",
                       "fastgru_ext/_math.pxd", "fastgru_ext/_rows.pxd",
                       "fastgru_ext/_checks.pxd"]),
]

setup(
    ext_modules=cythonize(extensions, compiler_directives={"language_level": "3"}),
    cmdclass={"build_ext": BuildExt},
)
