"""learnkit: the fastai-style training API on plain PyTorch."""

__version__ = "0.1.0"
