"""LoRA.rar: the hypernetwork that predicts column-wise merge coefficients for a content/style LoRA pair."""
