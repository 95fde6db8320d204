"""Training engine: recipes, the loop, checkpoints, distributed set-up."""
