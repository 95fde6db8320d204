"""Label assignment: pure functions mapping priors and ground truth to matched indices (ATSS, max-IoU)."""
