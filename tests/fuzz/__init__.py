"""Fuzzing malformed DICOM RT input (issue 6, part 1): harness, mutations and a long runner.

``harness`` builds a small evaluable case in memory, mutates it structurally or byte by byte
and runs the loader → DVH → evaluation pipeline under a time and memory guard. The pytest
suites ``tests/test_fuzz_*.py`` run a fixed-seed corpus; ``.venv/bin/python
tests/fuzz/long.py --minutes 30`` keeps drawing new cases for as long as it is given (not
``python -m tests...``: rt-utils installs a top-level ``tests`` package that shadows ours).
"""
