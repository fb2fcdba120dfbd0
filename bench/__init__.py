"""fastgru benchmarks: a pytest-benchmark suite and a report runner (python -m bench); see README.md."""
