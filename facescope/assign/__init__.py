"""Assignment of anchors to ground-truth faces (pure functions on boxes)."""
