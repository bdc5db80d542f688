"""The propagator interface every colorization model implements.

Conventions at this boundary (all models, all callers):
- Work happens at a *working resolution* chosen by the caller (``work_size``); the caller
  downsizes luma before ``step`` and brings chroma back to full resolution afterwards,
  guided by the full-resolution luma (``pipeline.model.upsample``).
- luma:   H x W float32 in [0, 1] (the film's Y' plane, normalised, range-expanded).
- chroma: 2 x H x W float32, (Cb, Cr) offsets in [-0.5, 0.5] in the output's Y'CbCr
  matrix; 0 is neutral grey.
- A propagator is stateful per scene: ``new_scene`` resets all memory and seeds it with
  the scene's exemplars; ``step`` is called once per frame *in processing order* (the
  caller decides direction: forward from an exemplar, or backward towards the scene start).
- Deterministic: the same calls give the same outputs.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass
from typing import Callable

import numpy as np


@dataclass(frozen=True)
class Exemplar:
    """A colour reference at working resolution."""

    frame: int  # 0-based frame index of the film that the exemplar shows
    luma: np.ndarray  # H x W float32 [0, 1]
    chroma: np.ndarray  # 2 x H x W float32 [-0.5, 0.5]
    sha256: str = ""  # of the source image file, for the run record


class Propagator(abc.ABC):
    """Carries colour from a scene's exemplar(s) to its frames, one frame at a time."""

    #: short name used on the command line and in the run record
    name: str = "base"
    version: str = "0"

    @abc.abstractmethod
    def new_scene(self, exemplars: list[Exemplar]) -> None:
        """Forget everything and start a scene seeded with these exemplars (>= 1)."""

    @abc.abstractmethod
    def step(self, luma: np.ndarray) -> np.ndarray:
        """luma: H x W float32 -> chroma: 2 x H x W float32 for this frame."""

    def weights_sha256(self) -> str:
        """sha256 of the weights file, '' for models without learned weights."""
        return ""


_REGISTRY: dict[str, Callable[..., Propagator]] = {}
# Built-in models by module, imported only when asked for (memnet pulls in torch).
_BUILTIN = {"flow": "pipeline.model.flow", "memnet": "pipeline.model.memnet"}


def register(name: str, factory: Callable[..., Propagator]) -> None:
    _REGISTRY[name] = factory


def available() -> list[str]:
    import importlib.util

    return sorted(set(_REGISTRY) | {n for n, m in _BUILTIN.items() if importlib.util.find_spec(m) is not None})


def info(name: str) -> dict:
    """name, version and weights sha256 of a model as the run record keeps them, without
    building it where the model can tell (`static_info`): the driver only needs this."""
    factory = _factory(name)
    static = getattr(factory, "static_info", None)
    if static is not None:
        return static()
    m = factory()
    return {"name": m.name, "version": m.version, "weights_sha256": m.weights_sha256()}


def _factory(name: str) -> Callable[..., Propagator]:
    if name not in _REGISTRY and name in _BUILTIN:
        import importlib

        importlib.import_module(_BUILTIN[name])
    if name not in _REGISTRY:
        raise KeyError(f"unknown model {name!r} (available: {', '.join(available())})")
    return _REGISTRY[name]


def create(name: str, **kwargs) -> Propagator:
    return _factory(name)(**kwargs)
