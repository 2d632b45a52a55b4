"""lorarar: merge a content LoRA and a style LoRA on device (LoRA.rar), and run Stable Diffusion with the merge.

The native engine (``lorarar._native``) parses LoRA files, folds merges and fuses weights; the PyTorch modules
here are the reference the tests compare it against, plus training and export tooling.
"""

from lorarar._native import Adapter, BaseModel, LoraFile, ThreadPool, version
from lorarar.errors import LoraError

__version__ = version()

__all__ = ["Adapter", "BaseModel", "LoraError", "LoraFile", "ThreadPool", "__version__"]
