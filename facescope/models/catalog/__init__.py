"""Torch-free declarations of the model families, one module per family.

Each module calls :func:`facescope.models.registry.register_model` for its architectures; the
registry imports every module of this package on first use (see :mod:`facescope.models.registry`).
The torch model classes take their anchors, coder and input spec from the same declarations.
"""
