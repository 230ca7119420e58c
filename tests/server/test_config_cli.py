"""Settings resolution (flag > env > default), validation messages, and the CLI subcommands."""

from __future__ import annotations

import dataclasses

import pytest

from reranker_server.cli import build_parser, main
from reranker_server.config import ConfigError, Settings, load_settings


def _parse(*argv: str):
    return build_parser().parse_args(["serve", *argv])


def test_defaults():
    s = load_settings(_parse(), env={})
    assert s == Settings()
    assert (
        s.max_sequence_length == 8192
        and s.dtype == "auto"
        and s.port == 8080
        and s.prefix_cache is True
    )


def test_env_used_and_flags_win():
    env = {
        "MODEL_NAME": "env/model",
        "BATCH_SIZE": "8",
        "PORT": "9000",
        "API_KEY": "k",
        "PREFIX_CACHE": "false",
        "DTYPE": "bfloat16",
        "SERVED_MODEL_NAME": "served",
    }
    s = load_settings(_parse("--port", "7000", "--model", "flag/model"), env=env)
    assert s.model == "flag/model" and s.port == 7000
    assert (
        s.batch_size == 8 and s.api_key == "k" and s.prefix_cache is False and s.dtype == "bfloat16"
    )
    assert s.served_model_name == "served"
    s2 = load_settings(_parse("--prefix-cache"), env=env)
    assert s2.prefix_cache is True


def test_every_setting_has_distinct_env():
    envs = [f.metadata["env"] for f in dataclasses.fields(Settings)]
    assert len(envs) == len(set(envs))
    for name in (
        "MODEL_NAME",
        "MODEL_REVISION",
        "SERVED_MODEL_NAME",
        "MODEL_FAMILY",
        "DEFAULT_INSTRUCTION",
        "MAX_SEQUENCE_LENGTH",
        "DTYPE",
        "DEVICE",
        "ATTN_IMPLEMENTATION",
        "QUANTIZATION",
        "BATCH_SIZE",
        "MAX_BATCH_TOKENS",
        "MAX_CLIENT_BATCH_SIZE",
        "MAX_CONCURRENT_REQUESTS",
        "SCORE_CACHE_SIZE",
        "MODEL_WORKERS",
        "TORCH_THREADS",
        "API_KEY",
        "HOST",
        "PORT",
        "LOG_LEVEL",
    ):
        assert name in envs


@pytest.mark.parametrize(
    ("argv", "env", "needle"),
    [
        (["--batch-size", "zero"], {}, "--batch-size / BATCH_SIZE (flag): expected an integer"),
        ([], {"BATCH_SIZE": "0"}, "--batch-size / BATCH_SIZE (env): must be >= 1"),
        ([], {"DTYPE": "float8"}, "--dtype / DTYPE (env): must be one of"),
        (["--quantization", "2bit"], {}, "--quantization / QUANTIZATION"),
        ([], {"PREFIX_CACHE": "maybe"}, "--prefix-cache / PREFIX_CACHE (env): expected true/false"),
    ],
)
def test_bad_values_name_flag_and_env(argv, env, needle):
    with pytest.raises(ConfigError) as err:
        load_settings(_parse(*argv), env=env)
    assert needle in str(err.value)


def test_engine_config_mapping():
    s = load_settings(
        _parse(
            "--batch-size",
            "4",
            "--max-batch-tokens",
            "999",
            "--score-cache-size",
            "10",
            "--max-concurrent-requests",
            "3",
            "--no-prefix-cache",
            "--model-workers",
            "3",
        ),
        env={"TORCH_THREADS": "1"},
    )
    e = s.engine_config()
    assert (
        e.max_batch_size,
        e.max_batch_tokens,
        e.score_cache_size,
        e.max_concurrent_requests,
        e.prefix_cache,
        e.model_workers,
        e.torch_threads,
    ) == (4, 999, 10, 3, False, 3, 1)


def test_serve_without_model_or_with_bad_flag_exits_2(monkeypatch, capsys):
    monkeypatch.delenv("MODEL_NAME", raising=False)
    assert main([]) == 2
    assert "--model" in capsys.readouterr().err
    assert main(["--model", "x", "--dtype", "float8"]) == 2
    assert "--dtype / DTYPE" in capsys.readouterr().err


def test_download_validates_a_local_model_dir(tmp_path, capsys):
    from reranker_devtools.tiny_models import main as make_tiny

    out = tmp_path / "ce"
    args = ["--family", "cross-encoder", "--out", str(out), "--hidden-size", "32", "--layers", "1"]
    assert make_tiny(args) == 0
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(out)
    assert config.hidden_size == 32 and config.num_hidden_layers == 1 and config.num_labels == 1
    capsys.readouterr()
    assert main(["download", "--model", str(out)]) == 0
    assert capsys.readouterr().out.strip() == str(out)
    assert (
        main(["download", "--model", str(tmp_path / "nothing-here" / "x")]) == 1
    )  # offline: hub lookup fails


def test_dtype_help_says_what_auto_does(capsys):
    """`--dtype auto` on a CPU takes bfloat16 where it is native and measured fast enough
    (choose_cpu_dtype); the help and the CRD's description say so, not "float32 on CPU"."""
    from reranker_contract import CPU_BF16_MIN_SPEEDUP
    from reranker_operator.api.spec import ModelSpec
    from reranker_server.models.loading import choose_cpu_dtype

    assert choose_cpu_dtype(True, CPU_BF16_MIN_SPEEDUP)[0] == "bfloat16"
    assert choose_cpu_dtype(True, CPU_BF16_MIN_SPEEDUP - 0.01)[0] == "float32"
    with pytest.raises(SystemExit):
        build_parser().parse_args(["serve", "--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    crd_text = ModelSpec.model_fields["dtype"].description
    for text in (help_text, crd_text):
        assert "float32 on CPU" not in text
        assert "bfloat16 where the CPU computes it natively (AVX512-BF16/AMX)" in text
        assert f">= {CPU_BF16_MIN_SPEEDUP}x float32" in text
