"""Training losses shared by detector families (pure functions on tensors)."""
