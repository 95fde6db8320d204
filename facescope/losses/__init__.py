"""Training criteria and the loss functions they are made of.

* :mod:`~facescope.losses.criteria`: the registered criteria by name (``CRITERIA``; a model's registry entry
  names its default), ``MultiShotCriterion`` and ``build_criterion(model, overrides)``;
* :mod:`~facescope.losses.result`: ``CriterionResult``, the ``Criterion`` protocol, the per-image statistic keys;
* :mod:`~facescope.losses.multibox`: ``MultiBoxCriterion`` (max-IoU, OHEM; box and classification losses by
  name; RetinaFace, DSFD);
* :mod:`~facescope.losses.scrfd`: ``SCRFDCriterion`` (ATSS, QFL, DIoU);
* :mod:`~facescope.losses.targets`: the shared, vectorised steps (flatten levels, assign, gather);
* parts: :mod:`~facescope.losses.classification` (softmax CE, sigmoid CE, focal, large-margin cosine),
  :mod:`~facescope.losses.gfl`, :mod:`~facescope.losses.iou`, :mod:`~facescope.losses.smooth_l1`
  (boxes and landmarks), :mod:`~facescope.losses.pixel` (RetinaFace's pixel term).
"""
