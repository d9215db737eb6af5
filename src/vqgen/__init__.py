"""vqgen: a VQ-VAE tokenizer and two transformer priors over its tokens (autoregressive and
discrete diffusion), as a plain-PyTorch library driven by a DVC pipeline."""

__version__ = "0.1.0"
