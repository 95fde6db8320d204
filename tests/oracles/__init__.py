"""Independent re-implementations of official pipelines: test oracles and benchmark baselines.

They are written from the behaviour documented in ``../shared/reference`` (no code copied) and live
outside the installed package: facescope never imports them. Tests import them as ``oracles.<module>``
(``tests/`` is on ``sys.path`` under pytest, as the folder of the root ``conftest.py``); the scripts in
``benchmarks/`` put ``tests/`` on ``sys.path`` the same way.
"""
