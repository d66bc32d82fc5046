"""staste's benchmarks: ``make bench`` (``python benchmarks/run.py``) runs them all.

Each module measures one thing and is importable on its own, so the test suite can run every
code path with tiny counts (tests/test_benchmarks_smoke.py).
"""
