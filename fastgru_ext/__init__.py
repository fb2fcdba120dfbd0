"""fastgru's compiled Cython kernels, used through ``fastgru.backends.cython_backend``.

``_gru`` holds the recurrence kernels and the thread-count setting
(``set_num_threads``, ``get_num_threads``, ``openmp_enabled``); ``_blas`` the one
typed GEMM wrapper over ``scipy.linalg.cython_blas``.
"""
