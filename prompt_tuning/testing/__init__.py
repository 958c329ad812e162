"""Offline fixtures shipped with the package: a tiny T5, a word vocabulary, a toy task.

Used by the tests, the smoke-test gin files (configs/models/t5_1_1_tiny_prompt.gin,
configs/runs/tiny_test.gin) and the notebooks' smoke mode; see `tiny`.
"""
