"""Builds the Cython extension fastgru_ext; everything else is in pyproject.toml.

OpenMP is used when the compiler accepts it (checked by compiling a small
program), else the extension is built without it and runs single-threaded.
FASTGRU_NO_OPENMP=1 forces the build without OpenMP. No -ffast-math: it would
break fastgru's numerical contract.
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
        return n > 0 ? 0 : 1;
    }
    """)


def openmp_flags(compiler):
    """The (compile, link) flags that enable OpenMP with this compiler, or None."""
    if os.environ.get("FASTGRU_NO_OPENMP", "") not in ("", "0"):
        return None
    if compiler.compiler_type == "msvc":
        return ["/openmp"], []
    flags = ["-fopenmp"]
    with tempfile.TemporaryDirectory() as tmp:
        source = os.path.join(tmp, "openmp_test.c")
        with open(source, "w") as f:
            f.write(OPENMP_TEST)
        try:
            objects = compiler.compile([source], output_dir=tmp, extra_postargs=flags)
            compiler.link_executable(objects, "openmp_test", output_dir=tmp, extra_postargs=flags)
        except Exception:  # CompileError, LinkError, or a missing compiler driver
            return None
    return flags, flags


class BuildExt(build_ext):
    def build_extensions(self):
        flags = openmp_flags(self.compiler)
        if flags is None:
            print("fastgru: building fastgru_ext without OpenMP: its kernels will run on one thread")
        for ext in self.extensions:
            if self.compiler.compiler_type != "msvc":
                ext.extra_compile_args += VECTORIZE
            if flags is not None and ext.name in USES_OPENMP:
                ext.extra_compile_args += flags[0]
                ext.extra_link_args += flags[1]
        super().build_extensions()


USES_OPENMP = {"fastgru_ext._gru"}
# -O3 vectorizes the elementwise loops (CFLAGS from the environment would otherwise
# decide, and may say -O2 or -O0). -fno-trapping-math lets the compiler if-convert
# the clamps in fastgru_ext/_math.pxd and so vectorize the loops that use them: it
# assumes floating-point exceptions never trap (Python never enables FP traps) and
# changes no value, unlike -ffast-math, which is not used.
VECTORIZE = ["-O3", "-fno-trapping-math", "--param=vect-max-version-for-alias-checks=64"]
extensions = [
    Extension("fastgru_ext._blas", ["fastgru_ext/_blas.pyx"]),
    Extension("fastgru_ext._gru", ["fastgru_ext/_gru.pyx"]),
]

setup(
    ext_modules=cythonize(extensions, compiler_directives={"language_level": "3"}),
    cmdclass={"build_ext": BuildExt},
)
