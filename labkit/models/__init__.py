"""The models the course notebooks build, each small enough to read in one sitting."""
from .cnn import CNN
from .gpt import GPT, GPTConfig
from .lora import LoRALinear, add_lora, merge_lora
from .mlp import MLP
from .rnn import CharLSTM, SequenceModel
from .transfer import GPTClassifier
from .utils import count_parameters

__all__ = [
    "MLP",
    "CNN",
    "SequenceModel",
    "CharLSTM",
    "GPT",
    "GPTConfig",
    "LoRALinear",
    "add_lora",
    "merge_lora",
    "count_parameters",
    "GPTClassifier",
]
