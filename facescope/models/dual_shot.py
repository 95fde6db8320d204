"""A composable dual-shot detector (DSFD's paradigm; ASFD searches its enhance module and uses one light head).

``DualShotDetector(backbone, extra_layers, enhance, head, ...)`` wires parts it is given, in the style of
torchvision's ``RetinaNet(backbone, anchor_generator=, head=)``::

    images -> backbone -> [top] -> + extra_layers -> [lateral] -> original maps of_1..of_L -- [first_norms] --> first head
                                                          |                                          (aux shot)
                                    (original or normalised maps)
                                                          v
                                         enhance stages, in order -> ef_1..ef_L --- [second_norms] --> head
                                                                                                    (final shot)

* ``enhance`` is a mapping of named stages, each ``list[Tensor] -> list[Tensor]`` keeping the number of
  maps, applied in order and registered on the detector under their names: DSFD's Feature Enhance Module is
  ``{"fusion": ProductTopDown, "fem": PerLevel(FeatureEnhanceModule ...)}`` (its state-dict keys ``fusion.*``
  and ``fem.*`` are the ones of the checkpoints trained before this class existed); ASFD's AutoFEM is its
  searched FPN cell then its per-level CPM cells.
* ``head`` maps a list of maps to ``(cls, box)`` per-level ``Tensor[B, N_l, C]`` / ``Tensor[B, N_l, 4]``
  (e.g. :class:`~facescope.models.heads.shot_head.ShotHead` with its ``depth``). It predicts the final
  (second) shot; ``first_head`` the first shot, or None to share ``head`` between both shots (then the
  original and enhanced maps must have the same channels per level).

Outputs: :class:`~facescope.models.base.DenseOutputs` of the second shot, with the first shot in
``aux``; ``anchor_generators`` is ``(second-shot priors, first-shot priors)``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from torch import Tensor, nn

from facescope.models.base import DenseFaceDetector, DenseOutputs
from facescope.models.spec import HeadLayout, InputSpec
from facescope.ops.anchors import AnchorGenerator


class DualShotDetector(DenseFaceDetector):
    """A two-shot detector assembled from injected parts.

    Args:
        backbone: returns the body's maps (shallow to deep) and exposes ``out_channels``.
        extra_layers: the last body map (after ``top``) -> the extra, coarser maps.
        enhance: the enhance stages by name, applied in order (see the module docstring).
        head: predicts the second (final) shot; also the first when ``first_head`` is None.
        layouts: ``(second shot, first shot)`` head layouts (anchors, coder, score activation).
        input_spec: the network input's normalisation.
        first_head: the first shot's own head; None shares ``head``.
        top: a module turning the body's last map into the top original map (VGG's fc6/fc7), or None.
        lateral: a ``list -> list`` module applied to the body and extra maps together, giving the original
            maps (ASFD: 1x1 projections of every level to one width, so one head serves both shots), or None.
        first_norms: per-level normalisation of the original maps before the first shot (a
            ``list -> list`` module, e.g. :class:`~facescope.models.layers.PerLevel` of L2Norms), or None.
        second_norms: the same on the enhanced maps before the second shot, or None.
        enhance_normalised: the enhance stages take the first shot's normalised maps instead of the
            original ones.
        first_shot_in_eval: compute the first shot in eval mode too (DSFD); False computes it only in training
            mode, where its loss is the auxiliary one (ASFD: inference runs the second shot only, so its
            multiply-adds and latency are the second shot's), as torchvision's Inception3 returns its
            auxiliary logits only while training.

    Attributes (their names are the state-dict prefixes): ``backbone``, ``top``, ``extras``, ``lateral``,
    ``first_norms``, the enhance stages, ``second_norms``, ``first_shot`` (None when shared),
    ``second_shot``.

    Example:
        >>> from facescope.models.backbones import MobileNetV1Taps
        >>> from facescope.models.catalog.dsfd import DSFD_INPUT, dsfd_head
        >>> from facescope.models.dsfd import ExtraLayers, dsfd_enhance
        >>> from facescope.models.heads.shot_head import ShotHead
        >>> body = MobileNetV1Taps()
        >>> channels = (*body.out_channels, 512, 256)
        >>> model = DualShotDetector(
        ...     body, ExtraLayers(256), dsfd_enhance(channels), ShotHead(channels, depth=2, width=64),
        ...     layouts=(dsfd_head("second"), dsfd_head("first")), input_spec=DSFD_INPUT)  # one shared head
        >>> out = model(torch.zeros(1, 3, 128, 128))
        >>> [t.shape[1] for t in out.cls_logits], len(out.aux)
        ([1024, 256, 64, 16, 4, 1], 1)
    """

    def __init__(
        self,
        backbone: nn.Module,
        extra_layers: nn.Module,
        enhance: Mapping[str, nn.Module],
        head: nn.Module,
        *,
        layouts: tuple[HeadLayout, HeadLayout],
        input_spec: InputSpec,
        first_head: nn.Module | None = None,
        top: nn.Module | None = None,
        lateral: nn.Module | None = None,
        first_norms: nn.Module | None = None,
        second_norms: nn.Module | None = None,
        enhance_normalised: bool = False,
        first_shot_in_eval: bool = True,
    ) -> None:
        second, first = layouts
        super().__init__(
            second.anchor_generator(),
            second.coder,
            input_spec,
            second.has_landmarks,
            score_activation=second.score_activation,
            logit_scale=second.logit_scale,
        )
        self.first_shot_anchor_generator = first.anchor_generator()
        reserved = {"backbone", "top", "extras", "lateral", "first_norms", "second_norms", "first_shot", "second_shot"}
        clashes = sorted(set(enhance) & reserved)
        if clashes or not enhance:
            raise ValueError(f"enhance needs at least one stage, named other than {sorted(reserved)} (got {list(enhance)})")
        self.fuse_normalised = enhance_normalised
        self.first_shot_in_eval = first_shot_in_eval
        self.enhance_stages = tuple(enhance)
        # Registration order = state-dict order (that of the DSFD checkpoints).
        self.backbone = backbone
        self.top = top
        self.extras = extra_layers
        self.lateral = lateral
        self.first_norms = first_norms
        for name, stage in enhance.items():
            self.add_module(name, stage)
        self.second_norms = second_norms
        self.first_shot = first_head
        self.second_shot = head

    @property
    def anchor_generators(self) -> tuple[AnchorGenerator, ...]:
        """``(second shot, first shot)``, aligned with ``(outputs, *outputs.aux)``."""
        return (self.anchor_generator, self.first_shot_anchor_generator)

    def original_features(self, images: Tensor) -> list[Tensor]:
        """of_1..of_L: ``Tensor[B, 3, H, W]`` -> the body's maps (the last through ``top``) and the extra maps
        (through ``lateral``)."""
        body = list(self.backbone(images))
        if self.top is not None:
            body[-1] = self.top(body[-1])
        return _apply(self.lateral, body + list(self.extras(body[-1])))

    def enhanced_features(self, original: Sequence[Tensor]) -> list[Tensor]:
        """ef_1..ef_L (before ``second_norms``): the enhance stages in order."""
        maps = list(original)
        for name in self.enhance_stages:
            maps = getattr(self, name)(maps)
        return maps

    def forward(self, images: Tensor) -> DenseOutputs:
        """``Tensor[B, 3, H, W]`` -> the second shot, with the first shot in ``aux`` (in eval mode only when
        ``first_shot_in_eval``)."""
        original = self.original_features(images)
        normalised = _apply(self.first_norms, original)
        enhanced = self.enhanced_features(normalised if self.fuse_normalised else original)
        second_cls, second_box = self.second_shot(_apply(self.second_norms, enhanced))
        if not (self.training or self.first_shot_in_eval):
            return DenseOutputs(second_cls, second_box)
        first_head = self.first_shot if self.first_shot is not None else self.second_shot
        first_cls, first_box = first_head(normalised)
        return DenseOutputs(second_cls, second_box, aux=(DenseOutputs(first_cls, first_box),))


def _apply(norms: nn.Module | None, maps: list[Tensor]) -> list[Tensor]:
    return maps if norms is None else norms(maps)
