"""Native LoRA engine: formats, merge, fuse"""

from collections.abc import Callable, Mapping, Sequence
from typing import Annotated, overload

import numpy
from numpy.typing import NDArray


def version() -> str: ...

def kernels_available() -> list[str]: ...

def default_kernel() -> str: ...

class ThreadPool:
    """Worker threads for fusing; 0 means one per hardware thread."""

    def __init__(self, num_threads: int = 0) -> None: ...

    @property
    def num_threads(self) -> int: ...

class LayerInfo:
    """One LoRA layer: dW = scale * B A on the module `name`."""

    @property
    def name(self) -> str:
        """diffusers module path"""

    @property
    def rank(self) -> int: ...

    @property
    def in_features(self) -> int: ...

    @property
    def out_features(self) -> int: ...

    @property
    def alpha(self) -> float:
        """alpha (= rank where the file carries none)"""

    @property
    def scale(self) -> float: ...

    @property
    def alpha_in_file(self) -> bool: ...

    @property
    def conv1x1(self) -> bool: ...

    @property
    def dtype(self) -> str:
        """factor dtype in the file: F32, F16 or BF16"""

class BaseModel:
    """A diffusers UNet folder: its config and the layers a LoRA may target."""

    @staticmethod
    def open(path: str) -> BaseModel: ...

    @property
    def dir(self) -> str: ...

    @property
    def config_json(self) -> str: ...

    @property
    def targets(self) -> list[tuple[str, int, int]]: ...

class LoraFile:
    """A parsed LoRA file (memory-mapped)."""

    @staticmethod
    def load(path: str, base: BaseModel | None = None, check_values: bool = True) -> LoraFile: ...

    @staticmethod
    def from_bytes(data: bytes, name: str, adapter_config_json: str = '', base: BaseModel | None = None, check_values: bool = True) -> LoraFile:
        """
        The bytes of a .safetensors LoRA (copied); `name` stands for the path in errors.
        """

    @property
    def path(self) -> str: ...

    @property
    def format(self) -> str: ...

    @property
    def text_encoder_keys(self) -> list[str]: ...

    @property
    def metadata(self) -> dict[str, str]: ...

    @property
    def layers(self) -> list[LayerInfo]: ...

    def factors(self, module: str) -> tuple[Annotated[NDArray[numpy.float32], dict(shape=(None, None))], Annotated[NDArray[numpy.float32], dict(shape=(None, None))]]:
        """
        (A, B) as float32 arrays: A is rank x in, B is out x rank (scale not applied).
        """

class Adapter:
    """A folded adapter: the merge of LoRAs, itself a LoRA."""

    @staticmethod
    def single(lora: LoraFile, scale: float = 1.0) -> Adapter: ...

    @staticmethod
    def merge(content: LoraFile, style: LoraFile, method: str = 'direct', content_scale: float = 1.0, style_scale: float = 1.0, coefficients: Mapping[str, tuple[Annotated[NDArray[numpy.float32], dict(shape=(None,), order='C', device='cpu', writable=False)], Annotated[NDArray[numpy.float32], dict(shape=(None,), order='C', device='cpu', writable=False)]]] | None = None) -> Adapter: ...

    @property
    def layers(self) -> list[tuple[str, int, int, int]]: ...

    def materialize(self, module: str) -> tuple[Annotated[NDArray[numpy.float32], dict(shape=(None, None))], Annotated[NDArray[numpy.float32], dict(shape=(None, None))]]:
        """(A', B') as float32 arrays with all scales folded into A'."""

    def save(self, path: str, dtype: str = 'f32') -> None: ...

    def fuse_into(self, module: str, weight: Annotated[NDArray, dict(order='C', device='cpu')], scale: float = 1.0, pool: ThreadPool | None = None, kernel: str = 'auto') -> None:
        """Adds scale * B'A' to a C-contiguous (out, in) weight, in place."""

    def fuse_unet_dir(self, base: BaseModel, out_dir: str, scale: float = 1.0, threads: int = 0, kernel: str = 'auto') -> None: ...

class Engine:
    """
    A loaded bundle: the native on-device pipeline (share it between threads).
    """

    @staticmethod
    def load(bundle_dir: str, n_threads: int = 0, verify_checksums: bool = True, parallel_contexts: bool = False, packed_cache_dir: str = '') -> Engine:
        """
        packed_cache_dir: a folder for XNNPACK's packed weights (written on the first load, mapped after); empty: packed on the heap at every load.
        """

    @property
    def image_size(self) -> tuple[int, int]: ...

    @property
    def max_rank(self) -> int: ...

    @property
    def backend(self) -> str: ...

    @property
    def has_hypernet(self) -> bool: ...

    @property
    def vae_tiling(self) -> tuple[int, int] | None:
        """
        (tile, overlap) of a tiled VAE decoder, in latent pixels; None when it decodes the whole latent.
        """

    @property
    def vae_tiles(self) -> int:
        """Decoder runs per image: the tiles, or 1."""

    def tokenize(self, prompt: str) -> list[int]: ...

    def check_lora(self, lora: LoraFile) -> None: ...

class Context:
    """Per-thread generation state: its own programs and LoRA slot."""

    @staticmethod
    def create(engine: Engine) -> Context: ...

    def set_loras(self, content: LoraFile | None, style: LoraFile | None, method: str = 'hypernet', content_scale: float = 1.0, style_scale: float = 1.0) -> dict[str, float]:
        """Merges the pair into the slot; returns the timings in ms."""

    def hypernet_coefficients(self, content: LoraFile, style: LoraFile) -> dict[str, tuple[list[float], list[float]]]: ...

    @property
    def slot_a(self) -> list[float]: ...

    @property
    def slot_b(self) -> list[float]: ...

    def generate(self, prompt: str, negative_prompt: str = '', steps: int = 25, guidance: float = 5.0, scheduler: str = 'ddim', seed: int = 0, progress: Callable[[int, int], bool] | None = None, trace: bool = False, decode_progress: Callable[[int, int], bool] | None = None) -> tuple:
        """
        Returns (image HxWx3 uint8, timings in ms, latents after each step if trace). progress(step, total) runs after each denoising step, decode_progress(tile, total) after each VAE decoder run (Engine.vae_tiles of them); either returning False cancels.
        """

    def cancel(self) -> None: ...

class Program:
    """An ExecuTorch program (.pte), run by the native engine."""

    @staticmethod
    def open(pte: str, ptd: str = '', methods: Sequence[str] = ['forward']) -> Program: ...

    @property
    def method_names(self) -> list[str]: ...

    def run(self, method: str, inputs: Sequence[Annotated[NDArray, dict(order='C', device='cpu')]]) -> list[NDArray[numpy.float32]]:
        """Runs a method on C-contiguous float32/int64 arrays."""

def load_coefficients(path: str) -> dict[str, tuple[list[float], list[float]]]: ...

def save_coefficients(coefficients: Mapping[str, tuple[Annotated[NDArray[numpy.float32], dict(shape=(None,), order='C', device='cpu', writable=False)], Annotated[NDArray[numpy.float32], dict(shape=(None,), order='C', device='cpu', writable=False)]]], path: str) -> None: ...

class Scheduler:
    """
    A diffusion scheduler matching diffusers' DDIMScheduler, EulerDiscreteScheduler or
    LCMScheduler for the same scheduler_config.json. Arrays are float32, any shape.
    """

    def __init__(self, kind: str, config_json: str = '{}') -> None:
        """
        kind: ddim, euler, lcm (or DDIMScheduler, EulerDiscreteScheduler, LCMScheduler); config_json: the
        text of a diffusers scheduler_config.json, missing fields taking the class's defaults.
        """

    @property
    def kind(self) -> str: ...

    @property
    def num_train_timesteps(self) -> int: ...

    @property
    def alphas_cumprod(self) -> NDArray[numpy.float32]: ...

    def set_timesteps(self, num_inference_steps: int) -> None: ...

    @property
    def num_inference_steps(self) -> int:
        """The steps to run: len(timesteps)."""

    @property
    def timesteps(self) -> NDArray[numpy.float32]:
        """diffusers' scheduler.timesteps as float32 (integers for DDIM and LCM)."""

    @property
    def sigmas(self) -> NDArray[numpy.float32]:
        """Euler's sigmas (len(timesteps) + 1); empty for DDIM and LCM."""

    @property
    def init_noise_sigma(self) -> float: ...

    @property
    def eta(self) -> float:
        """DDIM's eta (other kinds: 0 only)."""

    @eta.setter
    def eta(self, arg: float, /) -> None: ...

    def step_needs_noise(self, step_index: int) -> bool: ...

    def scale_model_input(self, sample: Annotated[NDArray[numpy.float32], dict(order='C', device='cpu', writable=False)], step_index: int) -> NDArray[numpy.float32]:
        """scheduler.scale_model_input(sample, timesteps[step_index])."""

    def step(self, model_output: Annotated[NDArray[numpy.float32], dict(order='C', device='cpu', writable=False)], sample: Annotated[NDArray[numpy.float32], dict(order='C', device='cpu', writable=False)], step_index: int, noise: Annotated[NDArray[numpy.float32], dict(order='C', device='cpu', writable=False)] | None = None) -> NDArray[numpy.float32]:
        """
        scheduler.step(model_output, timesteps[step_index], sample).prev_sample, as a new array; noise: the
        standard normal noise the step draws where step_needs_noise(step_index).
        """

def randn(seed: int, shape: Sequence[int], offset: int = 0) -> NDArray[numpy.float32]:
    """
    Standard normal float32 values number offset, offset + 1, ... of the engine's Philox4x32-10 stream
    for seed (runtime/core/random.h), in C order.
    """

def philox4x32_10(counter: Sequence[int], key: Sequence[int]) -> list[int]: ...

class ClipTokenizer:
    """
    CLIP's BPE tokenizer, id for id transformers.CLIPTokenizer(text, padding='max_length', max_length=max_length, truncation=True).
    """

    def __init__(self, vocab_json: str, merges_txt: str, *, max_length: int = 77, pad_token: str = '<|endoftext|>') -> None:
        """From the contents of vocab.json and merges.txt."""

    @staticmethod
    def from_dir(path: str, *, max_length: int = 77, pad_token: str = '<|endoftext|>') -> ClipTokenizer:
        """
        From a folder with vocab.json and merges.txt (or a pipeline folder with a tokenizer/ subfolder).
        """

    @overload
    def encode(self, text: str) -> list[int]:
        """bos + tokens + eos, truncated and padded to exactly max_length ids."""

    @overload
    def encode(self, text: bytes) -> list[int]:
        """The same for UTF-8 bytes; ill-formed sequences read as U+FFFD."""

    @overload
    def encode_unpadded(self, text: str) -> list[int]:
        """bos + tokens + eos, truncated to max_length ids, not padded."""

    @overload
    def encode_unpadded(self, text: bytes) -> list[int]:
        """The same for UTF-8 bytes; ill-formed sequences read as U+FFFD."""

    @overload
    def tokenize(self, text: str) -> list[int]:
        """Every token of the text: no bos/eos, no truncation."""

    @overload
    def tokenize(self, text: bytes) -> list[int]:
        """The same for UTF-8 bytes; ill-formed sequences read as U+FFFD."""

    @property
    def bos_id(self) -> int: ...

    @property
    def eos_id(self) -> int: ...

    @property
    def pad_id(self) -> int: ...

    @property
    def vocab_size(self) -> int: ...

    @property
    def max_length(self) -> int: ...
