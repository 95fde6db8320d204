"""SCRFD's computation-redistribution search (paper section 4.2), registered as ``facescope search scrfd-cr``.

``sample`` draws architectures uniformly from the paper's space within a GFLOP budget
(:mod:`.space`), ``run`` trains and scores each as a Ray task (:mod:`.driver`, :mod:`.trial`),
``analyze`` reads the population with the empirical bootstrap (:mod:`.analysis`, :mod:`.bootstrap`).
A sampled architecture is the ``model_args`` of the registered builder ``scrfd_cr``.
"""

from facescope.search import register_search
from facescope.search.scrfd_cr.cli import add_arguments

register_search(
    "scrfd-cr",
    summary="SCRFD computation redistribution: sample | run (on Ray) | analyze",
    run="facescope.search.scrfd_cr.cli:main",
    add_arguments=add_arguments,
    description=__doc__ or "",
)
