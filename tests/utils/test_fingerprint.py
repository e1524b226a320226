"""utils/fingerprint.py: the fingerprints are sha256 of exactly the bytes documented, so any changed bit shows."""
import hashlib

import torch

from utils.fingerprint import f32_hex, losses_sha256, tensor_bytes, weights_sha256


def test_weights_sha256_hashes_raw_little_endian_bytes_in_order():
    state = {"a": torch.tensor([1.0]), "b": torch.tensor([2], dtype=torch.int64)}
    expected = hashlib.sha256(bytes.fromhex("0000803f") + (2).to_bytes(8, "little")).hexdigest()
    assert weights_sha256(state) == expected
    assert weights_sha256({"b": state["b"], "a": state["a"]}) != expected  # order is part of it


def test_one_flipped_bit_changes_the_weights_fingerprint():
    weights = torch.linspace(-1, 1, 1000)
    flipped = weights.clone()
    flipped.view(torch.int32)[500] ^= 1  # the lowest mantissa bit of one value
    assert not torch.equal(weights, flipped)
    assert weights_sha256({"w": weights}) != weights_sha256({"w": flipped})


def test_bf16_and_non_contiguous_tensors():
    t = torch.tensor([1.0, 2.0], dtype=torch.bfloat16)
    assert tensor_bytes(t) == bytes.fromhex("803f0040")
    m = torch.arange(6, dtype=torch.int32).view(2, 3).t()  # non-contiguous: hashed in logical order
    assert tensor_bytes(m) == b"".join(int(v).to_bytes(4, "little") for v in (0, 3, 1, 4, 2, 5))


def test_loss_hex_and_losses_sha256():
    assert f32_hex(1.0) == "3f800000" and f32_hex(-2.5) == "c0200000"
    assert f32_hex(0.1) == "3dcccccd"  # the float32 nearest to 0.1, not the double
    expected = hashlib.sha256(bytes.fromhex("0000803f") + bytes.fromhex("000020c0")).hexdigest()
    assert losses_sha256(["3f800000", "c0200000"]) == expected
