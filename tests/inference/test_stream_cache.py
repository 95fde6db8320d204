"""A long stream of differently sized images keeps the per-size caches bounded."""

import numpy as np
import torch

from facescope import Detector
from facescope.models import create_model


def test_stream_of_many_sizes_keeps_the_prior_cache_bounded():
    torch.manual_seed(0)
    model = create_model("scrfd_500m_kps")
    detector = Detector(model, input_size="original", progress=False)
    generator = detector.model.anchor_generator
    rng = np.random.default_rng(0)
    sizes = [(int(h), int(w)) for h, w in rng.integers(20, 200, size=(80, 2))]
    frames = (rng.integers(0, 255, size=(h, w, 3), dtype=np.uint8) for h, w in sizes)
    counts = [len(d) for d in detector.stream(frames, color_order="bgr")]
    assert len(counts) == 80
    distinct_inputs = {(-(-h // 32) * 32, -(-w // 32) * 32) for h, w in sizes}
    assert len(distinct_inputs) > generator.cache_size  # the stream really overflows the cache
    assert len(generator._cache) == generator.cache_size
    # the most recent input size is the most recently used entry
    last_h, last_w = sizes[-1]
    assert next(reversed(generator._cache))[0] == (-(-last_h // 32) * 32, -(-last_w // 32) * 32)
