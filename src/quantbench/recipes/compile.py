"""``torch.compile`` for quantbench artifacts: the compiled-module adapter, the dynamic-shape
policy per model family, and :func:`compile_artifact` (recipe ``<recipe>+compile``).

Compiled artifacts are compiled when they are made, on the first calibration batch and
on a batch of one (which ``torch.compile`` specialises), so compile time is reported in
``Artifact.compile_s`` and not inside latency (a shape class met later, e.g. a batch of
one at a small image size, still compiles once at its first call). Inductor settings
(freezing) are set around every call of the artifact and restored, never left set.
"""

from __future__ import annotations

import functools
import time
from collections import Counter
from typing import Any

from quantbench.errors import UnsupportedError, first_line
from quantbench.recipes import Artifact

# Dynamo's per-code-object recompile limit (8 by default) is shared by every compiled
# instance of the same model class in a process; raised around our own calls only.
_RECOMPILE_LIMIT = 64


@functools.cache
def _compiled_class() -> type:
    import torch
    import torch._dynamo.config
    import torch._inductor.config

    class CompiledModule(torch.nn.Module):
        """A ``torch.compile``-d module run under its own Inductor/Dynamo settings.

        Inductor freezing has to be on while Dynamo traces and Inductor compiles, which
        happens lazily at the first call with a new shape (passing it through
        ``torch.compile(options=...)`` or a custom backend fails for PT2E graphs:
        "UnsupportedOperatorException: onednn.qconv_prepack"). So the settings are set
        around every call and restored after it, never left set for other modules.
        Dynamo's recompile limit (8 per code object, shared by every compiled instance
        of a model class in the process) is raised the same way, so that variants of
        one model do not silently fall back to eager. Plain attribute sets cost ~5 us;
        ``config.patch`` would cost ~50 us a call. ``_orig_mod`` is the uncompiled
        module, as on torch's ``OptimizedModule``.
        """

        def __init__(self, compiled: Any, inductor: dict[str, Any]) -> None:
            super().__init__()
            self.compiled = compiled
            self.inductor = dict(inductor)

        @property
        def _orig_mod(self) -> Any:
            return self.compiled._orig_mod

        def forward(self, *args: Any, **kwargs: Any) -> Any:
            # keywords too: a wrapper must call the model as its own forward is called
            ind, dyn = torch._inductor.config, torch._dynamo.config
            saved_ind = {k: getattr(ind, k) for k in self.inductor}
            saved_limit = dyn.recompile_limit
            try:
                for k, v in self.inductor.items():
                    setattr(ind, k, v)
                dyn.recompile_limit = max(saved_limit, _RECOMPILE_LIMIT)
                return self.compiled(*args, **kwargs)
            finally:
                dyn.recompile_limit = saved_limit
                for k, v in saved_ind.items():
                    setattr(ind, k, v)

        def state_dict(self, *args: Any, **kwargs: Any) -> Any:
            # What a user would ship is the compiled model's weights, without the wrapper.
            return self._orig_mod.state_dict(*args, **kwargs)

        def train(self, mode: bool = True) -> Any:
            # Inference only: exported graphs refuse train()/eval() altogether.
            if mode:
                raise NotImplementedError("a compiled quantbench artifact is inference-only")
            return self

    return CompiledModule


def dynamic_for(family: str) -> bool | None:
    """``torch.compile(dynamic=...)`` per model family.

    Text: ``True``, batch and sequence length symbolic from the start (sequence lengths
    vary widely, and for GEMM-bound transformers a dynamic graph is as fast as a static
    one: BERT pt2e 23.8 vs 23.3 ms). Vision: ``None`` (automatic), static graphs at the
    calibration image size, where the headline numbers are taken, and one graph with
    symbolic sizes compiled the first time another size or batch shows up: oneDNN picks
    better convolution kernels for known shapes (ResNet18 pt2e 3.4 vs 4.4 ms). Tensor
    models: ``False``, one static graph per shape: a 1-channel CNN's int8 program
    compiled with symbolic batch fails at its second batch size (an Inductor stride
    assertion), and tensor models are small enough to compile per shape.
    """
    if family == "tensor":
        return False
    return True if family == "text" else None


def dynamic_label(dynamic: bool | None) -> str:
    """How the shapes of a graph compiled with ``dynamic`` are treated, in words."""
    if dynamic:
        return "all dims symbolic (batch 1 specialised)"
    if dynamic is False:
        return "static: one graph per shape"
    return "automatic: static at the calibration shape, symbolic after a new shape"


def warm_batches(batches: list[tuple]) -> list[tuple]:
    """The batches compiling runs on: the first one, and a batch of one beside it
    (``torch.compile`` specialises size 1 even with ``dynamic=True``, so a batch-1 call
    would otherwise compile another graph inside the first latency point)."""
    import torch

    if not batches:
        return []
    first = batches[0]
    b = int(first[0].shape[0])
    if b == 1:
        return [first, tuple(torch.cat([t, t]) for t in first)]
    return [first, tuple(t[:1] for t in first)]


def _graph_count() -> int:
    import torch

    return int(torch._dynamo.utils.counters["stats"]["unique_graphs"])


def inductor_counters() -> Counter:
    """A snapshot of Dynamo's Inductor counters (lowerings applied so far)."""
    import torch

    return Counter(torch._dynamo.utils.counters["inductor"])


def compile_module(
    module: Any, warm: list[tuple], inductor: dict[str, Any], dynamic: bool | None
) -> tuple[Any, float, int]:
    """``torch.compile(module, dynamic=dynamic)``, compiled now on ``warm``.

    Returns (callable module, seconds spent compiling, graphs compiled). Runs under
    ``inference_mode`` on inputs created there, as the runner times: grad mode and
    whether an input is an inference tensor are part of Dynamo's guards (a mismatch
    compiles again), and Inductor freezes weights only with grad disabled.
    """
    import torch

    compiled = torch.compile(module, dynamic=dynamic)
    wrapped = _compiled_class()(compiled, inductor)
    graphs = _graph_count()
    t = time.perf_counter()
    with torch.inference_mode():
        for batch in warm:
            wrapped(*(x.clone() if isinstance(x, torch.Tensor) else x for x in batch))
    return wrapped, time.perf_counter() - t, _graph_count() - graphs


# --------------------------------------------------------------------------- compile variant


def compile_artifact(
    art: Artifact, example_inputs: Any, *, family: str | None = None, freezing: bool = False
) -> Artifact:
    """The same artifact under ``torch.compile``: recipe ``<recipe>+compile``.

    Compiles now, on ``example_inputs`` (one input tuple, or a list of them) and on a
    batch of one, and records the time in ``compile_s``. Sizes and module counts are
    those of the uncompiled artifact. ``family`` ("text" / "vision"; guessed from the
    inputs when None: integer token ids mean text) picks the dynamic-shape policy of
    the recipes (see ``dynamic_for``). ``freezing`` folds weights into the compiled
    graph (faster on CPU, but later ``load_state_dict`` calls no longer reach it).

    Example::

        >>> art = apply_recipe("dynamic-int8", m, ctx)                   # doctest: +SKIP
        >>> fast = compile_artifact(art, m.make_inputs(2, 128))          # doctest: +SKIP
        >>> fast.recipe, fast.runtime
        ('dynamic-int8+compile', 'torch-compile')
    """
    import torch

    from quantbench.measure import size

    if not isinstance(art.module, torch.nn.Module):
        raise UnsupportedError(
            f"{art.recipe} runs on {art.runtime}, not as a torch module: nothing to compile"
        )
    if art.details.get("compiled") or art.runtime == "torch-compile":
        raise UnsupportedError(f"{art.recipe} is already compiled")
    if (
        isinstance(example_inputs, tuple)
        and example_inputs
        and isinstance(example_inputs[0], torch.Tensor)
    ):
        example_inputs = [example_inputs]
    batches = list(example_inputs)
    base = art.module
    warm = warm_batches(batches) + batches[1:]
    inductor = {"freezing": True} if freezing else {}
    if family is None:
        ints = any(not t.is_floating_point() for t in batches[0] if isinstance(t, torch.Tensor))
        family = "text" if ints else "vision"
    dynamic = dynamic_for(family)
    try:
        module, compile_s, graphs = compile_module(base, warm, inductor, dynamic)
    except Exception as e:
        raise UnsupportedError(f"torch.compile failed on {art.recipe}: {first_line(e)}") from None

    def pick(own: Any, derive: Any) -> Any:
        return own if own is not None else derive()

    return Artifact(
        f"{art.recipe}+compile",
        module,
        runtime="torch-compile",
        notes=list(art.notes),
        size_bytes=pick(art.size_bytes, lambda: size.state_dict_bytes(base)),
        file=art.file,
        quantized_modules=pick(art.quantized_modules, lambda: size.quantized_modules(base)),
        float_modules=pick(art.float_modules, lambda: size.float_modules(base)),
        int8_param_fraction=pick(art.int8_param_fraction, lambda: size.int8_fraction(base)),
        param_bytes_by_dtype=pick(
            art.param_bytes_by_dtype, lambda: size.param_bytes_by_dtype(base)
        ),
        compile_s=compile_s,
        details={
            **art.details,
            "compiled": True,
            "freezing": freezing,
            "dynamic_shapes": dynamic_label(dynamic),
            "graphs_compiled": graphs,
            "base_recipe": art.recipe,
            "base_runtime": art.runtime,
        },
    )
