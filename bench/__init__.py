"""Benchmarks of keyframed (DESIGN.md section 9). Each module runs with ``python -m bench.<name>``.

They measure; they never assert on time. Results are printed as a table and written to
``bench/results/<name>.json`` (not committed).
"""
