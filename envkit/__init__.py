"""envkit: reproducible PyTorch/CUDA environments as Docker images."""

__version__ = "0.1.0"
