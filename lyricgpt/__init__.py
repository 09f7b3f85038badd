"""LyricGPT: a character-level GPT-2 for song lyrics, built from scratch in PyTorch."""

from .lm import BUNDLED_MODEL, LyricModel, ModelError, load_model
from .model import GPT, Bigram, BigramConfig, GPTConfig
from .tokenizer import CharTokenizer, normalize

__all__ = ["BUNDLED_MODEL", "LyricModel", "ModelError", "load_model", "GPT", "Bigram", "BigramConfig", "GPTConfig",
           "CharTokenizer", "normalize"]
