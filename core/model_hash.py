"""The content hash of a model's weights, which pairs an encoder or a directions file with its G.

Its own module so that `core.models` (which stamps it on inference copies) and `core.checkpoint`
(which records it) both use it without importing each other.
"""
from __future__ import annotations

import hashlib

from torch import nn


def state_hash(model: nn.Module) -> str:
    """Short content hash of a model's weights: pairs an encoder or a directions file with its G.

    A copy made by `core.models.prepare_for_inference` answers with the hash of its source.
    """
    source = getattr(model, "source_hash", None)
    if isinstance(source, str):
        return source
    h = hashlib.sha1()
    for name, tensor in sorted(model.state_dict().items()):
        h.update(name.encode())
        h.update(tensor.detach().float().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:16]
