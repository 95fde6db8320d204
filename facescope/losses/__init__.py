"""Training criteria and the loss functions they are made of.

* :mod:`~facescope.losses.criteria`: ``CriterionResult``, the ``Criterion`` protocol,
  ``MultiShotCriterion`` and ``build_criterion(model, overrides)``;
* :mod:`~facescope.losses.multibox`: ``MultiBoxCriterion`` (max-IoU, OHEM, smooth-L1; RetinaFace);
* :mod:`~facescope.losses.scrfd`: ``SCRFDCriterion`` (ATSS, QFL, DIoU);
* :mod:`~facescope.losses.targets`: the shared, vectorised steps (flatten levels, assign, gather);
* parts: :mod:`~facescope.losses.classification` (softmax CE, sigmoid CE, large-margin cosine),
  :mod:`~facescope.losses.gfl`, :mod:`~facescope.losses.iou`, :mod:`~facescope.losses.smooth_l1`
  (boxes and landmarks), :mod:`~facescope.losses.pixel` (RetinaFace's pixel term).
"""
