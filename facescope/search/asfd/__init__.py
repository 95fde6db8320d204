"""ASFD's AutoFEM search (paper section 3), registered as ``facescope search asfd RECIPE --out DIR``.

The recipe trains the supernet ``asfd_supernet`` (:class:`~facescope.models.autofem.SearchAutoFEM`: PC-DARTS
partial channels, the one-path forward) with the engine's ``bilevel`` step strategy: the network weights on
one half of the training images with the recipe's optimizer, the architecture logits on the other half
with Adam, only from ``optim.step_options.architecture_start_epoch`` on. The run (:mod:`.run`) writes, in
``DIR``: ``genotype.json`` (the derived cells, a ``model_args.genotype`` file for ``asfd_d0`` .. ``asfd_d6``),
``arch_history.json`` (the softmax architecture weights and derived genotype after every epoch) and
``arch_history.png`` (their plot), next to the training run's own files (``last.pth``, ``metrics.jsonl``).
It resumes (``--resume``) and runs under torchrun as ``facescope train`` does.
"""

from facescope.search import register_search
from facescope.search.asfd.cli import add_arguments

register_search(
    "asfd",
    summary="ASFD AutoFEM: train the supernet bilevel, derive the genotype (genotype.json, arch_history.json/.png)",
    run="facescope.search.asfd.run:main",
    add_arguments=add_arguments,
    description=__doc__ or "",
)
