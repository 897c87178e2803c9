"""helpers.precision: which precision runs where (bf16 only where the CPU has it natively) and its context."""

from __future__ import annotations

import pytest

from helpers import precision


def test_precision_context_is_a_no_op_except_for_bf16():
    import torch

    for p in ("fp32", "int8"):
        with precision.precision_context(p):
            assert not torch.is_autocast_enabled("cpu")
    with pytest.raises(ValueError, match="precision must be one of"):
        precision.precision_context("fp16")


X86_FLAGS = ("processor\t: 0\nmodel name\t: Intel(R) Xeon(R) Processor\n"
             "flags\t\t: fpu sse sse2 avx2 avx512f avx512dq avx512bw avx512vl avx512_vnni\n")


def test_native_bf16_is_read_from_the_cpu_flags_not_from_onednn():
    # AVX512 without AVX512-BF16: oneDNN calls bf16 supported here, yet emulates it (4x slower)
    assert not precision.bf16_in_cpu_flags(X86_FLAGS)
    assert precision.bf16_in_cpu_flags(X86_FLAGS.replace("avx512_vnni", "avx512_vnni avx512_bf16"))
    assert precision.bf16_in_cpu_flags(X86_FLAGS.replace("avx512_vnni", "amx_bf16 amx_tile"))
    assert precision.bf16_in_cpu_flags("processor\t: 0\nFeatures\t: fp asimd sve bf16 i8mm\n")  # Arm
    assert not precision.bf16_in_cpu_flags("model name\t: bf16 in a name is not a flag\n")
    assert not precision.bf16_in_cpu_flags("")


@pytest.mark.parametrize("native, expected", [(True, "bf16"), (False, "fp32")])
def test_auto_precision_and_the_cpu_profile_follow_the_cpu(monkeypatch, native, expected):
    from helpers.profiles import get_profile

    monkeypatch.setattr(precision, "native_bf16", lambda: native)
    assert precision.resolve_precision("auto") == expected
    assert precision.resolve_precision("fp32") == "fp32" and precision.resolve_precision("int8") == "int8"
    cpu = get_profile("cpu")
    assert (cpu.precision, cpu.train_precision) == (expected, expected)
    assert get_profile("smoke").precision == "fp32"  # explicit precisions are kept as they are
    with pytest.raises(ValueError, match="precision must be one of"):
        precision.resolve_precision("fp16")


@pytest.mark.parametrize("gpu_bf16, expected", [(True, "bf16"), (False, "fp32")])
def test_auto_precision_on_a_gpu_asks_the_gpu_not_the_cpu(monkeypatch, gpu_bf16, expected):
    import torch

    monkeypatch.setattr(precision, "native_bf16", lambda: not gpu_bf16)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: gpu_bf16)
    assert precision.resolve_precision("auto", "cuda") == expected


def test_emulated_bf16_warns(monkeypatch, caplog):
    monkeypatch.setattr(precision, "native_bf16", lambda: False)
    precision.warn_if_bf16_is_emulated.cache_clear()
    try:
        with caplog.at_level("WARNING", logger="helpers.precision"):
            precision.warn_if_bf16_is_emulated()
        assert "bf16 is emulated" in caplog.text
    finally:
        precision.warn_if_bf16_is_emulated.cache_clear()
