"""Make a loaded model fast: persistent skip hooks, layout, torch.compile, CUDA graphs.

The hooks are registered once, before compiling, and each trial only copies its coefficients
into their tensors; so neither a compiled denoiser nor a captured graph is rebuilt per trial.
A CUDA graph is captured per input shape on the first call and replayed after that: inputs
are copied into its static buffers, the output is copied out of them.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from dataclasses import dataclass, replace

import torch

from ..models import LoadedModel
from ..tuning.skips import SkipHooks
from .compile_modes import COMPILE_MODES
from .precision import FP32, Precision

Call = Callable[[torch.Tensor, torch.Tensor, torch.Tensor | None], torch.Tensor]


@dataclass
class Captured:
    """A captured call: its static inputs, its static output and how to replay it."""

    inputs: tuple[torch.Tensor | None, ...]
    output: torch.Tensor
    replay: Callable[[], None]


# One memory pool for every graph of the process: graphs of different batch sizes share it.
_POOL: list = []


def capture_cuda_graph(call: Call, inputs: tuple[torch.Tensor | None, ...]) -> Captured:
    """Warm ``call`` up on a side stream, then capture it on ``inputs`` as a CUDA graph."""
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        for _ in range(2):  # cuDNN autotuning and lazy initialization happen outside the graph
            call(*inputs)
    torch.cuda.current_stream().wait_stream(side)
    if not _POOL:
        _POOL.append(torch.cuda.graph_pool_handle())
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph, pool=_POOL[0]):
        output = call(*inputs)
    return Captured(inputs, output, graph.replay)


class GraphedCall:
    """``call(x, sigma, labels)`` replayed from a graph captured once per input shape.

    ``variant_of`` names the plain numbers a capture holds (a guidance weight, FreeU's
    factors): when it changes, the graphs are captured again.
    """

    def __init__(self, call: Call,
                 capture: Callable[[Call, tuple], Captured] = capture_cuda_graph,
                 variant_of: Callable[[], Hashable] = lambda: None) -> None:
        self.call, self.capture, self.variant_of = call, capture, variant_of
        self.graphs: dict[tuple, Captured] = {}
        self.variant: Hashable = None

    def __call__(self, x: torch.Tensor, sigma: torch.Tensor,
                 labels: torch.Tensor | None = None) -> torch.Tensor:
        """The call's output for these inputs, computed by replaying the graph of their shapes."""
        variant = self.variant_of()
        if variant != self.variant:  # a graph holds the Python numbers it was captured with
            self.graphs.clear()
            self.variant = variant
        given = (x, sigma, labels)
        if labels is not None and not isinstance(labels, torch.Tensor):
            raise TypeError("CUDA graphs need tensor conditioning; this model's is "
                            f"{type(labels).__name__}")
        key = tuple(None if t is None else (tuple(t.shape), t.dtype, t.stride()) for t in given)
        key += (torch.is_autocast_enabled(x.device.type),
                torch.get_autocast_dtype(x.device.type))
        captured = self.graphs.get(key)
        if captured is None:
            static = tuple(None if t is None else t.clone() for t in given)
            captured = self.graphs[key] = self.capture(self.call, static)
        for buffer, value in zip(captured.inputs, given, strict=True):
            if buffer is not None:
                buffer.copy_(value)
        captured.replay()
        return captured.output.clone()  # the next replay overwrites the static output


def accelerate(model: LoadedModel, precision: Precision = FP32,
               compile_mode: str | None = None, cuda_graph: bool = False) -> LoadedModel:
    """``model`` with persistent hooks, its layout, and compiled and/or graphed if asked."""
    denoiser = model.denoiser
    hooks = model.hooks if model.hooks is not None else SkipHooks(denoiser, denoiser.skips)
    if precision.channels_last:
        denoiser.to(memory_format=torch.channels_last)
    if compile_mode is not None:
        if compile_mode not in COMPILE_MODES:
            raise ValueError(f"unknown compile mode {compile_mode!r}; choose one of "
                             f"{', '.join(COMPILE_MODES)}")
        # In place: module names stay, so the hooks registered above are traced with it.
        denoiser.compile(mode=compile_mode, dynamic=False)
    network = GraphedCall(denoiser, variant_of=lambda: (
        getattr(denoiser, "guidance_scale", None), hooks.freeu_factors)) if cuda_graph else None
    return replace(model, precision=precision, hooks=hooks, network=network)
