"""Benchmark scripts, and the modules the tests share with them (``bench.clips``, ``bench.flicker``).

A package so that the tests (whose conftest puts the repository root on ``sys.path``) can ``import bench.clips``;
the scripts themselves still run as ``python bench/NAME.py`` and import their siblings by plain name.
"""
