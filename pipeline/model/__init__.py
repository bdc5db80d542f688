"""Propagation models: luma in, chroma out, one scene at a time."""

from pipeline.model.base import Exemplar, Propagator, available, create, info

__all__ = ["Exemplar", "Propagator", "available", "create", "info"]
