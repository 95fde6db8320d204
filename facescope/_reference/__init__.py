"""Independent re-implementations of official inference pipelines.

They are test oracles and benchmark baselines, written from the behaviour documented in
``../shared/reference`` (no code copied); facescope itself never uses them.
"""
