"""Builds the Cython extension fastgru_ext; everything else is in pyproject.toml.

Each optional compiler flag is used only if the compiler accepts it (checked by
compiling a small program), so the build works with gcc, clang and MSVC:

* OpenMP (-fopenmp, /openmp): the kernels' prange. Without it the extension is
  built anyway and runs on one thread. FASTGRU_NO_OPENMP=1 leaves it out.
* -O3: vectorizes the elementwise loops (CFLAGS from the environment would
  otherwise decide, and may say -O2 or -O0).
* -fno-trapping-math: lets gcc if-convert the clamps in fastgru_ext/_math.pxd,
  and so vectorize the loops that use them. It assumes floating-point
  exceptions never trap (Python never enables FP traps) and changes no value.
* --param=vect-max-version-for-alias-checks=64: the per-row loops read and write
  several arrays; gcc's default allows too few runtime alias checks to vectorize them.
* -march=native: the vector width of the machine that builds (AVX2/AVX-512 where
  there is one; the baseline x86-64 has 128-bit SSE2 only). The cython backend is
  built by `pip install .` on the machine that runs it; set FASTGRU_PORTABLE=1 when
  building a wheel for other machines. Measured on an AVX-512 machine, float32
  forward with SSE2: 1.2-1.45x Numba's time; with -march=native: see the README.
* -ffp-contract=off: no fused multiply-adds the source does not ask for (gcc fuses
  by default where the target has FMA), so results do not depend on the target.

No -ffast-math: it would break fastgru's numerical contract.
"""
import os
import tempfile
import textwrap

from Cython.Build import cythonize
from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

OPENMP_TEST = textwrap.dedent("""\
    #include <omp.h>
    int main(void) {
        int n = 0;
        #pragma omp parallel reduction(+:n)
        n += 1;
        return omp_get_max_threads() > 0 && n > 0 ? 0 : 1;
    }
    """)
PLAIN_TEST = "int main(void) { return 0; }\n"
SPEED_FLAGS = ["-O3", "-fno-trapping-math", "--param=vect-max-version-for-alias-checks=64",
               "-ffp-contract=off"]
NATIVE_FLAGS = ["-march=native"]
USES_OPENMP = {"fastgru_ext._gru"}


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


def openmp_flags(compiler):
    """The flags that enable OpenMP with this compiler, or None."""
    if os.environ.get("FASTGRU_NO_OPENMP", "") not in ("", "0"):
        return None
    flags = ["/openmp"] if compiler.compiler_type == "msvc" else ["-fopenmp"]
    return flags if compiles(compiler, flags, OPENMP_TEST) else None


class BuildExt(build_ext):
    def build_extensions(self):
        portable = os.environ.get("FASTGRU_PORTABLE", "") not in ("", "0")
        wanted = SPEED_FLAGS + ([] if portable else NATIVE_FLAGS)
        speed = [] if self.compiler.compiler_type == "msvc" else [
            flag for flag in wanted if compiles(self.compiler, [flag])]
        openmp = openmp_flags(self.compiler)
        if openmp is None:
            print("fastgru: building fastgru_ext without OpenMP: its kernels will run on one thread")
        for ext in self.extensions:
            ext.extra_compile_args += speed
            if openmp is not None and ext.name in USES_OPENMP:
                ext.extra_compile_args += openmp
                ext.extra_link_args += openmp
        super().build_extensions()


extensions = [
    Extension("fastgru_ext._blas", ["fastgru_ext/_blas.pyx"]),
    Extension("fastgru_ext._gru", ["fastgru_ext/_gru.pyx"]),
]

setup(
    ext_modules=cythonize(extensions, compiler_directives={"language_level": "3"}),
    cmdclass={"build_ext": BuildExt},
)
