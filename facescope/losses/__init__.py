"""Training losses shared by detector families."""
