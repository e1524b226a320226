"""Bit-exact fingerprints of a run: any changed bit of any parameter or loss changes them.

- ``weights_sha256``: sha256 over the raw bytes of every tensor of a state_dict (parameters and buffers), in
  state_dict order.
- ``losses_sha256``: sha256 over the float32 total loss of every optimizer step, in step order; each loss is
  recorded as ``f32_hex`` (8 hex digits, big-endian) in metrics.jsonl and hashed as its little-endian bytes, the
  bytes of the tensor itself.
"""
from __future__ import annotations

import hashlib
import struct

import torch


def tensor_bytes(t: torch.Tensor) -> bytes:
    """Raw little-endian bytes of a tensor (any dtype, bf16 included), copied to the host."""
    t = t.detach().cpu().contiguous().reshape(-1)
    return t.view(torch.uint8).numpy().tobytes()


def weights_sha256(state_dict: dict) -> str:
    """sha256 hex digest over every tensor's bytes, in the state_dict's order."""
    h = hashlib.sha256()
    for value in state_dict.values():
        h.update(tensor_bytes(value))
    return h.hexdigest()


def f32_hex(value: float) -> str:
    """The exact float32 bits of a loss value, as 8 hex digits (big-endian, readable)."""
    return struct.pack(">f", value).hex()


def losses_sha256(hex_losses: list[str]) -> str:
    """sha256 over the losses written by ``f32_hex``, each as its little-endian float32 bytes."""
    h = hashlib.sha256()
    for hx in hex_losses:
        h.update(bytes.fromhex(hx)[::-1])
    return h.hexdigest()
