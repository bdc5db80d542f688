"""The automatic colorizer's identity without torch: what the driver records and checks.

The driver needs only the name, version and the verified weights sha256 of the automatic
colorizer (for the plan key and the run record); the network itself is built where it
runs (the plan tasks). Kept apart from `pipeline.model.auto` (torch, the network) so the
driver does not build the network or read its tensors only to learn these three fields.
"""

from __future__ import annotations

import os

from pipeline.storage import file_sha256

NAME = "auto"
VERSION = "1"
WEIGHTS_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "weights")
DEFAULT_WEIGHTS = os.path.join(WEIGHTS_DIR, "auto.safetensors")


def expected_sha256(weights: str) -> str:
    path = os.path.splitext(weights)[0] + ".sha256"
    if not os.path.exists(path):
        raise RuntimeError(f"auto colorizer: checksum file {path} is missing (needed to verify {weights})")
    with open(path) as f:
        text = f.read().split()
    if not text:
        raise RuntimeError(f"auto colorizer: checksum file {path} is empty")
    return text[0].strip().lower()


def verified_sha256(path: str) -> str:
    """The sha256 of the weights file at `path`, checked against its `.sha256` beside it."""
    if not os.path.exists(path):
        raise RuntimeError(f"auto colorizer: weights file {path} not found")
    want, got = expected_sha256(path), file_sha256(path)
    if got != want:
        raise RuntimeError(f"auto colorizer: sha256 of {path} is {got}, but "
                           f"{os.path.splitext(path)[0]}.sha256 says {want}: corrupt or mismatched weights")
    return got


def info(weights: str = DEFAULT_WEIGHTS) -> dict:
    return {"name": NAME, "version": VERSION, "weights_sha256": verified_sha256(weights)}
