"""The memory of the memnet propagator (XMem-style), kept apart from the engine.

Three stores, each holding key/value *elements* (one element = one position of a frame's
memory-resolution feature map):

- permanent: the scene's exemplar(s); never compressed, never evicted.
- working:   every gamma-th coloured frame, FIFO, at most ``max_working`` frames. When it
             is full, its oldest ``max_working - min_working`` frames are *compressed*:
             only their ``compress_to`` (M) most-used elements survive, moved to long-term.
- long-term: the compressed elements, at most ``max_longterm``; past that the least-used
             long-term elements are evicted.

Usage of an element = the attention it received in readouts (accumulated). So the memory
holds at most  P + max_longterm + max_working * E  elements (P permanent, E per frame),
however long the scene is.

All tensors are batched (B = 1 at inference, B clips at training time):
  keys:   B x Ck x N
  values: B x Cv x N
  usage:  B x N
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch


@dataclass
class _Store:
    keys: torch.Tensor | None = None  # B x Ck x N
    values: torch.Tensor | None = None  # B x Cv x N
    usage: torch.Tensor | None = None  # B x N

    @property
    def size(self) -> int:
        return 0 if self.keys is None else int(self.keys.shape[-1])

    def append(self, keys: torch.Tensor, values: torch.Tensor, usage: torch.Tensor) -> None:
        if self.keys is None:
            self.keys, self.values, self.usage = keys, values, usage
        else:
            self.keys = torch.cat([self.keys, keys], dim=-1)
            self.values = torch.cat([self.values, values], dim=-1)
            self.usage = torch.cat([self.usage, usage], dim=-1)

    def select(self, idx: torch.Tensor) -> None:
        """Keep only elements ``idx`` (B x K), in that order."""
        self.keys = _gather(self.keys, idx)
        self.values = _gather(self.values, idx)
        self.usage = torch.gather(self.usage, 1, idx)


def _gather(x: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    # x: B x C x N, idx: B x K -> B x C x K
    return torch.gather(x, 2, idx.unsqueeze(1).expand(-1, x.shape[1], -1))


@dataclass
class MemoryConfig:
    gamma: int = 5  # every gamma-th frame goes to working memory
    max_working: int = 6  # N_s: frames in working memory before compression
    min_working: int = 3  # N_e: frames kept uncompressed after compression
    compress_to: int = 128  # M: elements kept per compression
    max_longterm: int = 1024  # long-term elements, least-used evicted beyond
    topk: int = 16  # readout top-k


@dataclass
class MemoryManager:
    """Bookkeeping of permanent / working / long-term memory. No learned parts."""

    cfg: MemoryConfig = field(default_factory=MemoryConfig)

    def __post_init__(self) -> None:
        self.reset()

    # ---- lifecycle -------------------------------------------------------------------
    def reset(self) -> None:
        self.permanent = _Store()
        self.longterm = _Store()
        self.working: list[_Store] = []  # one store per frame, oldest first
        self.frames_seen = 0
        self.compressions = 0
        self._cache: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None

    def add_permanent(self, keys: torch.Tensor, values: torch.Tensor) -> None:
        # keys: B x Ck x E, values: B x Cv x E
        self.permanent.append(keys, values, keys.new_zeros(keys.shape[0], keys.shape[-1]))
        self._cache = None

    def should_memorize(self) -> bool:
        """Called once per stepped frame, after its readout: True every gamma-th frame."""
        self.frames_seen += 1
        return self.frames_seen % self.cfg.gamma == 0

    def add_working(self, keys: torch.Tensor, values: torch.Tensor) -> None:
        # keys: B x Ck x E, values: B x Cv x E
        st = _Store()
        st.append(keys, values, keys.new_zeros(keys.shape[0], keys.shape[-1]))
        self.working.append(st)
        if len(self.working) > self.cfg.max_working:
            self._compress()
        self._cache = None

    def _compress(self) -> None:
        n_old = len(self.working) - self.cfg.min_working
        old, self.working = self.working[:n_old], self.working[n_old:]
        merged = _Store()
        for st in old:
            merged.append(st.keys, st.values, st.usage)
        m = min(self.cfg.compress_to, merged.size)
        # the M most-used elements (ties -> earliest index, deterministic)
        idx = _topk_stable(merged.usage, m)
        merged.select(idx)
        self.longterm.append(merged.keys, merged.values, merged.usage)
        if self.longterm.size > self.cfg.max_longterm:
            keep = _topk_stable(self.longterm.usage, self.cfg.max_longterm)
            keep = torch.sort(keep, dim=1).values  # keep chronological order
            self.longterm.select(keep)
        self.compressions += 1

    # ---- readout support -------------------------------------------------------------
    @property
    def size(self) -> int:
        return self.permanent.size + self.longterm.size + sum(s.size for s in self.working)

    @property
    def bound(self) -> int:
        """Upper bound of ``size`` given the per-frame element count seen so far."""
        per_frame = self.working[0].size if self.working else 0
        return self.permanent.size + self.cfg.max_longterm + self.cfg.max_working * per_frame

    def stores(self) -> list[_Store]:
        return [self.permanent, self.longterm, *self.working]

    def keys_values(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """All memory as (keys B x Ck x N, values B x Cv x N, |k|^2 B x N); cached."""
        if self._cache is None:
            sts = [s for s in self.stores() if s.size]
            k = torch.cat([s.keys for s in sts], -1)
            v = torch.cat([s.values for s in sts], -1)
            self._cache = (k, v, (k * k).sum(1))
        return self._cache

    def add_usage(self, usage: torch.Tensor) -> None:
        """usage: B x N attention received by each element, in ``keys_values`` order."""
        usage = usage.detach()
        off = 0
        for s in self.stores():
            if s.size:
                s.usage = s.usage + usage[:, off : off + s.size]
                off += s.size


def _topk_stable(usage: torch.Tensor, k: int) -> torch.Tensor:
    """Indices (B x k) of the k largest values; deterministic tie-break by index."""
    return torch.sort(usage, dim=-1, descending=True, stable=True).indices[:, :k]
