"""Quantization of recurrent models (no dependency on torch.ao.quantization)."""
