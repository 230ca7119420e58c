"""Build tiny random reranker models offline (tests, demo, benchmark).

    python -m reranker_devtools.tiny_models --family qwen3|qwen3-causal|cross-encoder --out DIR
        [--hidden-size 64] [--layers 2] [--seed 0]

Two families: a Qwen3ForCausalLM with a byte-level BPE whose vocabulary holds `yes` and `no` as
single tokens (the Qwen3-Reranker layout), and a BertForSequenceClassification(num_labels=1)
cross-encoder with a WordPiece tokenizer. Nothing is downloaded; weights are random but spread
(normal(0, std)) so scores differ between documents.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import torch

from reranker_contract import FAMILIES, ModelFamily
from reranker_contract.score_check import BuiltinCheck

# The score check's built-in checks a random-weight model can pass (SCORE_CHECK_BUILTINS):
# `relevance` needs a trained model, so every server on a tiny model leaves it out.
UNTRAINED_BUILTINS = ",".join(c for c in BuiltinCheck if c != BuiltinCheck.RELEVANCE)

QWEN_SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<think>", "</think>"]
QWEN_SPLIT_PATTERN = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"
    r"|\s*[\r\n]+|\s+(?!\S)|\s+"
)
BERT_SPECIAL_TOKENS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]

_WORDS = [
    "the",
    "a",
    "of",
    "and",
    "to",
    "in",
    "is",
    "was",
    "for",
    "on",
    "that",
    "with",
    "as",
    "by",
    "at",
    "from",
    "it",
    "this",
    "be",
    "are",
    "or",
    "an",
    "which",
    "query",
    "document",
    "judge",
    "whether",
    "meets",
    "requirements",
    "based",
    "instruct",
    "provided",
    "note",
    "answer",
    "can",
    "only",
    "yes",
    "no",
    "given",
    "web",
    "search",
    "retrieve",
    "relevant",
    "passages",
    "system",
    "user",
    "assistant",
    "think",
    "paris",
    "france",
    "capital",
    "city",
    "river",
    "london",
    "england",
    "germany",
    "berlin",
    "water",
    "ocean",
    "mountain",
    "learning",
    "machine",
    "model",
    "neural",
    "network",
    "python",
    "kubernetes",
    "operator",
    "server",
    "cluster",
    "pod",
    "reranker",
    "score",
    "batch",
    "token",
    "gpu",
    "memory",
    "cache",
    "prefix",
    "health",
    "ready",
    "metrics",
    "request",
    "apple",
    "banana",
    "orange",
    "fruit",
    "tree",
    "green",
    "blue",
    "red",
    "quick",
    "brown",
    "fox",
    "jumps",
    "over",
    "lazy",
    "dog",
    "number",
    "one",
    "two",
    "three",
    "four",
    "five",
    "ten",
    "hundred",
    "thousand",
    "year",
    "day",
    "time",
    "people",
    "world",
]


def single_token_words(tokenizer: Any) -> list[str]:
    """The vocabulary's words that `tokenizer` makes one token alone and after a space: a text
    of them splits into tokens exactly at its spaces, so any run of its tokens is a text."""
    return [
        w
        for w in _WORDS
        if w.isalpha()
        and len(tokenizer(w, add_special_tokens=False)["input_ids"]) == 1
        and len(tokenizer(" " + w, add_special_tokens=False)["input_ids"]) == 1
    ]


def default_corpus(seed: int = 0, lines: int = 400) -> list[str]:
    """A deterministic training corpus: prompt-like text, plain sentences, digits, punctuation."""
    rng = random.Random(seed)
    corpus = [
        (
            "Judge whether the Document meets the requirements based on the Query and the Instruct "
            'provided. Note that the answer can only be "yes" or "no".'
        ),
        "<Instruct>: Given a web search query, retrieve relevant passages that answer the query",
        "<Query>: what is the capital of France?\n<Document>: Paris is the capital of France.",
    ]
    corpus += ["yes", "no", "yes\nno", "no\nyes", "Yes.", "No."] * 50
    for _ in range(lines):
        words = [rng.choice(_WORDS) for _ in range(rng.randint(3, 14))]
        if rng.random() < 0.3:
            words.insert(rng.randrange(len(words)), str(rng.randint(0, 99999)))
        sentence = " ".join(words)
        sentence = sentence[0].upper() + sentence[1:] + rng.choice([".", "?", "!", ",", ";", ":"])
        corpus.append(sentence)
    corpus.append("café naïve 東京 данные — «quotes» (parens) [brackets] {braces} 3.14 50% $5 #tag")
    return corpus


def _spread_init_(model: torch.nn.Module, std: float, seed: int) -> None:
    """Re-initialise every matrix (linear/embedding) from normal(0, std); norms stay at 1."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for param in model.parameters():
            if param.dim() >= 2:
                param.copy_(torch.randn(param.shape, generator=gen) * std)
            elif param.dim() == 1 and not torch.all(param == 1):
                param.zero_()  # biases


def _train_byte_bpe(corpus: Iterable[str], vocab_size: int, split_pattern: str | None):
    from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    # the same normalizer and pre-tokenization as the real Qwen2/Qwen3 tokenizer.json
    tok.normalizer = normalizers.NFC()
    byte_level = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    if split_pattern is None:  # no word split: merges may cross spaces (tests the fallback path)
        tok.pre_tokenizer = byte_level
    else:
        split = pre_tokenizers.Split(Regex(split_pattern), behavior="isolated", invert=False)
        tok.pre_tokenizer = pre_tokenizers.Sequence([split, byte_level])
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=QWEN_SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(list(corpus), trainer=trainer)
    for word in ("yes", "no"):
        if tok.token_to_id(word) is None:
            raise ValueError(
                f"vocab_corpus: {word!r} did not become a single token; add it as a word"
            )
    return tok


def build_qwen3_reranker(
    path: str | Path,
    *,
    hidden_size: int = 64,
    num_layers: int = 2,
    num_heads: int = 4,
    num_kv_heads: int = 2,
    head_dim: int = 16,
    intermediate_size: int | None = None,
    vocab_corpus: Iterable[str] | None = None,
    vocab_size: int = 1024,
    max_position_embeddings: int = 4096,
    init_std: float = 0.2,
    split_pattern: str | None = QWEN_SPLIT_PATTERN,
    seed: int = 0,
) -> Path:
    """Save a tiny Qwen3ForCausalLM + left-padding byte-level BPE tokenizer to `path`."""
    from transformers import PreTrainedTokenizerFast, Qwen3Config, Qwen3ForCausalLM

    out = Path(path)
    out.mkdir(parents=True, exist_ok=True)
    corpus = list(vocab_corpus) if vocab_corpus is not None else default_corpus(seed)
    raw = _train_byte_bpe(corpus, vocab_size, split_pattern)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=raw,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        padding_side="left",
        model_max_length=max_position_embeddings,
        additional_special_tokens=["<|im_start|>", "<|im_end|>"],
    )
    config = Qwen3Config(
        vocab_size=raw.get_vocab_size(),
        hidden_size=hidden_size,
        intermediate_size=intermediate_size or 2 * hidden_size,
        num_hidden_layers=num_layers,
        num_attention_heads=num_heads,
        num_key_value_heads=num_kv_heads,
        head_dim=head_dim,
        max_position_embeddings=max_position_embeddings,
        tie_word_embeddings=True,
        pad_token_id=raw.token_to_id("<|endoftext|>"),
        eos_token_id=raw.token_to_id("<|im_end|>"),
        bos_token_id=None,
    )
    torch.manual_seed(seed)
    model = Qwen3ForCausalLM(config)
    _spread_init_(model, init_std, seed)
    model.eval()
    model.save_pretrained(out)
    _save_portable_tokenizer(tokenizer, out)
    return out


def _save_portable_tokenizer(tokenizer: Any, out: Path) -> None:
    """Save the tokenizer under a class name transformers 4.x knows too.

    transformers 5 writes `TokenizersBackend`; the peers that pin 4.x (Infinity) cannot load
    that, and real checkpoints name a class both understand (`PreTrainedTokenizerFast` is one).
    """
    tokenizer.save_pretrained(out)
    config_path = Path(out) / "tokenizer_config.json"
    config = json.loads(config_path.read_text())
    config["tokenizer_class"] = "PreTrainedTokenizerFast"
    config_path.write_text(json.dumps(config, indent=2) + "\n")


def _train_wordpiece(corpus: Iterable[str], vocab_size: int):
    from tokenizers import (
        Tokenizer,
        decoders,
        models,
        normalizers,
        pre_tokenizers,
        processors,
        trainers,
    )

    tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.decoder = decoders.WordPiece()
    trainer = trainers.WordPieceTrainer(
        vocab_size=vocab_size, special_tokens=BERT_SPECIAL_TOKENS, show_progress=False
    )
    tok.train_from_iterator(list(corpus), trainer=trainer)
    cls_id, sep_id = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", cls_id), ("[SEP]", sep_id)],
    )
    return tok


def build_cross_encoder(
    path: str | Path,
    *,
    hidden_size: int = 64,
    num_layers: int = 2,
    num_heads: int = 4,
    intermediate_size: int | None = None,
    vocab_corpus: Iterable[str] | None = None,
    vocab_size: int = 1024,
    max_position_embeddings: int = 512,
    init_std: float = 0.2,
    seed: int = 0,
) -> Path:
    """Save a tiny BertForSequenceClassification(num_labels=1) + WordPiece tokenizer to `path`."""
    from transformers import BertConfig, BertForSequenceClassification, PreTrainedTokenizerFast

    out = Path(path)
    out.mkdir(parents=True, exist_ok=True)
    corpus = list(vocab_corpus) if vocab_corpus is not None else default_corpus(seed)
    raw = _train_wordpiece(corpus, vocab_size)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=raw,
        unk_token="[UNK]",
        sep_token="[SEP]",
        pad_token="[PAD]",
        cls_token="[CLS]",
        mask_token="[MASK]",
        padding_side="right",
        model_max_length=max_position_embeddings,
        model_input_names=["input_ids", "token_type_ids", "attention_mask"],
    )
    config = BertConfig(
        vocab_size=raw.get_vocab_size(),
        hidden_size=hidden_size,
        num_hidden_layers=num_layers,
        num_attention_heads=num_heads,
        intermediate_size=intermediate_size or 2 * hidden_size,
        max_position_embeddings=max_position_embeddings,
        type_vocab_size=2,
        num_labels=1,
        pad_token_id=raw.token_to_id("[PAD]"),
    )
    torch.manual_seed(seed)
    model = BertForSequenceClassification(config)
    _spread_init_(model, init_std, seed)
    model.eval()
    model.save_pretrained(out)
    _save_portable_tokenizer(tokenizer, out)
    return out


# --family names a ModelFamily, or "qwen3", the short name of qwen3-causal
FAMILY_ALIASES = {"qwen3": ModelFamily.QWEN3_CAUSAL}
FAMILY_CHOICES = (*FAMILY_ALIASES, *FAMILIES)


def build_tiny_model(
    family: str, path: str | Path, *, hidden_size: int = 64, layers: int = 2, seed: int = 0
) -> Path:
    """A tiny model of `family` (one of FAMILY_CHOICES) with heads sized from `hidden_size`."""
    if hidden_size < 8 or layers < 1:
        raise ValueError("hidden_size must be >= 8 and layers >= 1")
    resolved = FAMILY_ALIASES.get(family, family)
    if resolved == ModelFamily.QWEN3_CAUSAL:
        heads = max(1, hidden_size // 16)
        return build_qwen3_reranker(
            path,
            hidden_size=hidden_size,
            num_layers=layers,
            num_heads=heads,
            num_kv_heads=1 if heads % 2 else max(1, heads // 2),
            head_dim=16,
            seed=seed,
        )
    if resolved == ModelFamily.CROSS_ENCODER:
        heads = 4 if hidden_size % 4 == 0 else 1
        return build_cross_encoder(
            path, hidden_size=hidden_size, num_layers=layers, num_heads=heads, seed=seed
        )
    raise ValueError(f"family: unknown {family!r}; expected one of {', '.join(FAMILY_CHOICES)}")


def main(argv: list[str] | None = None) -> int:
    """`python -m reranker_devtools.tiny_models`: build one model and print its directory."""
    import argparse

    parser = argparse.ArgumentParser(description="Build a tiny random reranker model offline.")
    parser.add_argument("--family", required=True, choices=FAMILY_CHOICES)
    parser.add_argument("--out", required=True, help="output directory")
    parser.add_argument("--hidden-size", type=int, default=64)
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    try:
        out = build_tiny_model(
            args.family, args.out, hidden_size=args.hidden_size, layers=args.layers, seed=args.seed
        )
    except ValueError as exc:
        parser.error(str(exc))
    print(out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
