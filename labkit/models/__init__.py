"""The models the course notebooks build, each small enough to read in one sitting."""
from .cnn import CNN
from .gpt import GPT, GPTConfig
from .lora import LoRALinear, add_lora, merge_lora
from .mlp import MLP
from .rnn import CharLSTM, SequenceModel
from .seq2seq import Seq2Seq
from .tcn import TCN, CausalConv1d
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
    "Seq2Seq",
    "count_parameters",
    "TCN",
    "CausalConv1d",
    "GPTClassifier",
]
