"""Training entry point, harness and tasks (PyTorch). Run: python -m training.train --config FILE."""
