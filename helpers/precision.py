"""The precision policy: which numeric precision encoding and training run at, and where bf16 pays.

``precision`` everywhere (``DenseRetriever``, ``RetrieverFactory``, ``helpers.evaluate --precision``,
``helpers.bench --precision``, the profiles, ``train_precision``) is one of :data:`PRECISIONS`, or
:data:`AUTO` (:func:`resolve_precision`):

* ``fp32``: the model as it is.
* ``bf16``: the same PyTorch model under ``torch.autocast(dtype=bfloat16)`` (:func:`precision_context`);
  weights stay fp32, matrix products run in bf16 with fp32 accumulation. On a CPU with native bf16
  (AVX512-BF16 or AMX) it encodes me5-small 2.7x faster with dev recall within 0.004 of fp32; where
  bf16 is emulated it is 4x *slower*, so the profiles ask for ``"auto"``, which takes bf16 only where
  :func:`native_bf16` finds it in the CPU's flags. Training takes the same choice (``train_precision``).
* ``int8``: a different model, the transformer as an int8 ONNX graph (:mod:`helpers.quantize`). It
  missed the issue #13 bar (>= 2.5x, recall within 0.005) and is kept as an option.
"""

from __future__ import annotations

import contextlib
import functools
import logging

logger = logging.getLogger(__name__)

PRECISIONS = ("fp32", "bf16", "int8")
# Not a precision but a choice of one: bf16 where the CPU computes it natively, else fp32 (resolve_precision).
AUTO = "auto"


def check_precision(precision: str) -> str:
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    return precision


def precision_context(precision: str, model=None):
    """Context in which a PyTorch model encodes at ``precision``: bf16 autocast, else nothing.

    bf16 keeps the fp32 weights and runs matrix products in bfloat16 with fp32 accumulation (torch's
    autocast); it pays off on CPUs with AVX512-BF16 or AMX (2.7x, see README) and is emulated, 4x
    slower, elsewhere (``"auto"`` picks: :func:`resolve_precision`). int8 is a different model
    (:func:`helpers.int8.int8_model`), so it needs no context here.
    """
    check_precision(precision)
    if precision != "bf16":
        return contextlib.nullcontext()
    import torch

    device = getattr(model, "device", None)
    device_type = getattr(device, "type", None) or "cpu"
    if device_type == "cpu":
        warn_if_bf16_is_emulated()
    return torch.autocast(device_type=device_type, dtype=torch.bfloat16)


def bf16_in_cpu_flags(cpuinfo: str) -> bool:
    """Whether ``/proc/cpuinfo`` text names a native bf16 instruction set: AVX512-BF16 or AMX-BF16 on
    x86, the ``bf16`` feature on Arm."""
    flags = set()
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        if key.strip().lower() in ("flags", "features"):
            flags.update(value.split())
    return bool(flags & {"avx512_bf16", "amx_bf16", "bf16"})


@functools.cache
def native_bf16() -> bool:
    """Whether this CPU computes bf16 natively (then bf16 autocast is faster than fp32, else slower).

    Read from the CPU's flags, not from ``torch.ops.mkldnn._is_mkldnn_bf16_supported()``: oneDNN reports
    bf16 as supported on every AVX512 CPU, where it emulates it; measured on a Xeon with AVX512 but no
    AVX512-BF16, bf16 encoded 4x *slower* than fp32 (``helpers.bench --precision fp32 bf16``) and
    trained 3.1x slower (1.7 against 5.2 pairs/s, ``helpers.sweep --variant lr=2e-4,fp32 lr=2e-4,bf16
    --steps 30``). Where the flags cannot be read (not Linux) this says False: fp32 is the safe default.
    """
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            return bf16_in_cpu_flags(f.read())
    except OSError:
        return False


def resolve_precision(precision: str, device: str = "cpu") -> str:
    """``"auto"`` -> ``"bf16"`` where ``device`` computes it natively (a CPU: :func:`native_bf16`; a GPU,
    ``device="cuda"``: ``torch.cuda.is_bf16_supported()``), else ``"fp32"``; any other precision is
    checked and returned as it is."""
    if precision != AUTO:
        return check_precision(precision)
    if device == "cuda":
        import torch

        return "bf16" if torch.cuda.is_bf16_supported() else "fp32"
    return "bf16" if native_bf16() else "fp32"


@functools.cache
def warn_if_bf16_is_emulated() -> None:
    """Warn once when this CPU has no native bf16 (AVX512-BF16 / AMX): it works, but slower than fp32."""
    if not native_bf16():
        logger.warning("bf16 is emulated on this CPU (no AVX512-BF16 or AMX in its flags): it is slower "
                       "than fp32 (4x when encoding on one such Xeon). Use precision 'fp32' or 'auto'.")
