"""Merging LoRA pairs: the native fold (lorarar._native.Adapter) and its PyTorch reference."""
