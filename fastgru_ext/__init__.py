"""fastgru's compiled C kernels, used through ``fastgru.backends.cython_backend``.

``_gru`` holds the engine's five team kernels (the twins of the Numba backend's),
built on ``_product.h`` (the product tiles), ``_sync.h`` (the barrier) and
``_math.pxd`` (exp, sigmoid, tanh).
"""
