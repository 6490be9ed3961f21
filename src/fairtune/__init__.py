"""fairtune: debias a trained PyTorch classifier by fine-tuning the weights that carry the bias."""

__version__ = "0.1.0"
