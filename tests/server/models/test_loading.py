"""Family detection, overrides and clear errors for unavailable options."""

from __future__ import annotations

import importlib.util

import pytest

from reranker_server.models import LoadOptions, ModelLoadError, load_backend
from reranker_server.models.loading import detect_family, download_model, resolve_dtype
from scoring_helpers import score_full


def test_detects_both_families(tiny_qwen3_path, tiny_cross_encoder_path):
    from transformers import AutoConfig, AutoTokenizer

    for path, family in (
        (tiny_qwen3_path, "qwen3-causal"),
        (tiny_cross_encoder_path, "cross-encoder"),
    ):
        assert (
            detect_family(AutoConfig.from_pretrained(path), AutoTokenizer.from_pretrained(path))
            == family
        )


def test_causal_without_yes_no_is_rejected(tiny_qwen3_path, tiny_cross_encoder_path):
    from transformers import AutoConfig, AutoTokenizer

    config = AutoConfig.from_pretrained(tiny_qwen3_path)
    bert_tok = AutoTokenizer.from_pretrained(
        tiny_cross_encoder_path
    )  # WordPiece: 'yes' may exist, force a miss
    vocab = {k: v for k, v in bert_tok.get_vocab().items() if k not in ("yes", "no")}

    class NoYes:
        def get_vocab(self):
            return vocab

    with pytest.raises(ModelLoadError, match="model_family"):
        detect_family(config, NoYes())


def test_classifier_with_two_labels_is_rejected(tiny_cross_encoder_path):
    from transformers import AutoConfig, AutoTokenizer

    config = AutoConfig.from_pretrained(tiny_cross_encoder_path, num_labels=2)
    with pytest.raises(ModelLoadError, match="num_labels=2"):
        detect_family(config, AutoTokenizer.from_pretrained(tiny_cross_encoder_path))


def test_bad_override_and_unknown_arch(tiny_cross_encoder_path):
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(tiny_cross_encoder_path)
    with pytest.raises(ModelLoadError, match="model_family"):
        detect_family(config, None, "bogus")
    config.architectures = ["BertModel"]
    with pytest.raises(ModelLoadError, match="model-family"):
        detect_family(config, None)
    assert detect_family(config, None, "cross-encoder") == "cross-encoder"


@pytest.mark.skipif(
    importlib.util.find_spec("flash_attn") is not None, reason="flash-attn installed"
)
def test_flash_attention_without_package(tiny_qwen3_path):
    with pytest.raises(
        ModelLoadError, match="attn_implementation: flash_attention_2 needs the flash-attn"
    ):
        load_backend(
            LoadOptions(
                model=str(tiny_qwen3_path), device="cpu", attn_implementation="flash_attention_2"
            )
        )


@pytest.mark.skipif(
    importlib.util.find_spec("bitsandbytes") is not None, reason="bitsandbytes installed"
)
def test_quantization_without_package(tiny_qwen3_path):
    with pytest.raises(ModelLoadError, match="quantization: 8bit needs the bitsandbytes"):
        load_backend(LoadOptions(model=str(tiny_qwen3_path), device="cpu", quantization="8bit"))


def test_dtype_choices():
    import torch

    from reranker_server.models.loading import (
        choose_cpu_dtype,
        choose_cuda_dtype,
        resolve_dtype_choice,
    )

    # auto on a CPU: bf16 only where native and measurably faster; on a GPU: from Ampere on
    assert choose_cpu_dtype(False, None)[0] == "float32"
    assert choose_cpu_dtype(True, 1.2)[0] == "float32"
    assert choose_cpu_dtype(True, 4.9) == (
        "bfloat16",
        "auto: bf16 matmul measured 4.9x fp32 on this CPU",
    )
    assert choose_cuda_dtype((7, 5))[0] == "float16"  # T4: torch calls bf16 "supported" (emulated)
    assert choose_cuda_dtype((8, 0))[0] == "bfloat16" and choose_cuda_dtype((9, 0))[0] == "bfloat16"
    dtype, why = resolve_dtype_choice("auto", "cpu")
    assert why.startswith("auto: ") and dtype in (torch.float32, torch.bfloat16)
    assert (dtype == torch.bfloat16) == ("fp32 on this CPU" in why)
    assert resolve_dtype("bfloat16", "cpu") == torch.bfloat16
    assert resolve_dtype_choice("float32", "cpu") == (torch.float32, "as configured")
    with pytest.raises(ModelLoadError, match="dtype"):
        resolve_dtype("float8", "cpu")


def test_bfloat16_load_runs(tiny_qwen3_path):
    backend = load_backend(LoadOptions(model=str(tiny_qwen3_path), device="cpu", dtype="bfloat16"))
    assert backend.dtype == "bfloat16"
    from reranker_server.contracts import RerankInput

    enc = backend.encode(RerankInput(query="q", documents=["a", "b"]))
    assert len(score_full(backend, enc.prefix_ids, enc.pairs)) == 2


def test_missing_model_is_clear_error(tmp_path):
    with pytest.raises(ModelLoadError, match="model: cannot load"):
        load_backend(LoadOptions(model=str(tmp_path / "nope"), device="cpu"))


def test_download_validates_local_dir(tiny_qwen3_path, tmp_path):
    assert download_model(str(tiny_qwen3_path)) == tiny_qwen3_path
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="config.json"):
        download_model(str(tmp_path / "empty"))
