"""File formats: LoRA files are parsed natively (lorarar._native.LoraFile); helpers for writing folders live here."""
