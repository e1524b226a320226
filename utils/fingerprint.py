"""Bit-exact fingerprints of a run: any changed bit of any parameter or loss changes them.

- ``weights_sha256``: sha256 over the raw bytes of every tensor of a state_dict (parameters and buffers), in
  state_dict order.
- ``losses_sha256``: sha256 over the float32 total loss of every optimizer step, in step order; each loss is
  recorded as ``f32_hex`` (8 hex digits, big-endian) in metrics.jsonl and hashed as its little-endian bytes, the
  bytes of the tensor itself.
- ``device_fingerprint``: a 64-bit integer hash of the same kind of bits, computed on the tensors' own device with
  one small transfer to the host, for frequent checks during training (see its docstring).
"""
from __future__ import annotations

import hashlib
import struct
from collections.abc import Iterable, Iterator

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


# --- On-device parameter fingerprint -------------------------------------------------------------------------------
# splitmix64 (Steele, Lea, Flood 2014; Vigna's reference code): the golden-ratio increment and the finalizer's two
# multipliers. Device arithmetic is on int64 (torch has no uint64 shifts), so they go in through ``_signed64``.
_MASK64 = (1 << 64) - 1
_GOLDEN = 0x9E3779B97F4A7C15
_MIX1 = 0xBF58476D1CE4E5B9
_MIX2 = 0x94D049BB133111EB
_BITS_VIEW = {1: torch.uint8, 2: torch.int16, 4: torch.int32, 8: torch.int64}  # element size (bytes) -> bits dtype
# Elements hashed by one run of kernels (three int64 buffers of this length per device). On CPU, buffers that stay
# in L2 are ~2x faster than large ones (measured on Darknet-53); on GPUs large batches amortise kernel launches.
CHUNK_ELEMENTS = {"cpu": 1 << 17}  # 3 x 1 MiB
DEFAULT_CHUNK_ELEMENTS = 1 << 23  # other devices: 3 x 64 MiB


def _signed64(value: int) -> int:
    """The int64 whose two's-complement bits are ``value mod 2**64`` (torch only takes signed 64-bit scalars)."""
    value &= _MASK64
    return value - (1 << 64) if value >> 63 else value


def _shr_xor_(z: torch.Tensor, shift: int, scratch: torch.Tensor) -> None:
    """In place ``z ^= z >>> shift`` (logical shift) on int64 ``z``, using ``scratch`` (same shape) as buffer: int64
    ``>>`` sign-extends, so the copied-in high bits are masked off."""
    torch.bitwise_right_shift(z, shift, out=scratch)
    z.bitwise_xor_(scratch.bitwise_and_((1 << (64 - shift)) - 1))


def _mix64_(z: torch.Tensor, scratch: torch.Tensor) -> torch.Tensor:
    """splitmix64 finalizer, in place on an int64 tensor (any shape; ``scratch``: a buffer of the same shape): a
    bijection of the 64 bits of each element. int64 multiplication wraps modulo 2**64 on CPU and CUDA, which is
    exactly the unsigned product's low 64 bits."""
    _shr_xor_(z, 30, scratch)
    z.mul_(_signed64(_MIX1))
    _shr_xor_(z, 27, scratch)
    z.mul_(_signed64(_MIX2))
    _shr_xor_(z, 31, scratch)
    return z


def _tensor_key(index: int, t: torch.Tensor) -> tuple[int, int]:
    """(seed, header term) of the tensor at ``index`` in the sequence: two 64-bit words of sha256 over
    ``"INDEX:DTYPE:SHAPE"`` (e.g. ``"3:torch.float32:64,3,3,3"``), computed on the host from metadata only."""
    header = f"{index}:{t.dtype}:{','.join(str(s) for s in t.shape)}".encode()
    digest = hashlib.sha256(header).digest()
    return int.from_bytes(digest[:8], "little"), int.from_bytes(digest[8:16], "little")


def _bits(t: torch.Tensor) -> torch.Tensor:
    """``t`` viewed (no copy, same shape and strides) as the integer dtype of its element size."""
    view = _BITS_VIEW.get(t.element_size())
    if view is None:
        raise TypeError(f"device_fingerprint: {t.dtype} has {t.element_size()}-byte elements")
    return t.detach().view(view)


def _flat_pieces(t: torch.Tensor, chunk: int, start: int = 0) -> Iterator[tuple[int, torch.Tensor]]:
    """Yield ``(offset, piece)``: 1-D pieces of ``t`` in logical row-major order, ``offset`` = flat index of the
    piece's first element, each at most ``chunk`` elements. A contiguous tensor is sliced without copies; a
    non-contiguous one is split along dim 0 until a piece fits, so ``reshape`` copies at most ``chunk`` elements."""
    if t.is_contiguous() or t.numel() <= chunk:
        flat = t.reshape(-1)
        for s in range(0, flat.numel(), chunk):
            yield start + s, flat[s:s + chunk]
        return
    row = t[0].numel()
    if row > chunk:  # one row is too big: descend into each row (drops a dimension, so this terminates)
        for r in range(t.shape[0]):
            yield from _flat_pieces(t[r], chunk, start + r * row)
        return
    rows = chunk // row
    for r in range(0, t.shape[0], rows):
        yield from _flat_pieces(t[r:r + rows], chunk, start + r * row)


class _Batch:
    """Packs pieces of many tensors of one device into int64 buffers of ``capacity`` elements, so the mixing runs
    once per full buffer instead of once per tensor (a state_dict has hundreds of small tensors: BN vectors).

    Per piece: a widening copy of its bits, a mask for int16/int32 views, one add for its position term.
    Per flush: XOR, mix64 and a sum into ``acc`` (0-dim int64 on the device), about 15 kernels.
    """

    def __init__(self, device: torch.device, capacity: int):
        # steps[k] = k * GOLDEN, so a piece's position term is one add: steps[s:e] + (constant of the piece).
        self.steps = torch.arange(capacity, dtype=torch.int64, device=device).mul_(_signed64(_GOLDEN))
        self.z = torch.empty_like(self.steps)  # position terms, then the mixed values
        self.v = torch.empty_like(self.steps)  # zero-extended bits, then the mixer's scratch
        self.used = 0
        self.acc = torch.zeros((), dtype=torch.int64, device=device)

    def add(self, piece: torch.Tensor, seed: int, offset: int) -> None:
        """Append 1-D integer bits ``piece`` whose first element has flat index ``offset`` in the tensor of
        ``seed``; flushes first if it does not fit (a piece is at most ``capacity`` elements)."""
        if self.used + piece.numel() > self.steps.numel():
            self.flush()
        s, e = self.used, self.used + piece.numel()
        # Buffer slot k holds element j = offset + (k - s): seed + j * GOLDEN = steps[k] + seed + (offset - s) * GOLDEN.
        torch.add(self.steps[s:e], _signed64(seed + (offset - s) * _GOLDEN), out=self.z[s:e])
        value = self.v[s:e]
        value.copy_(piece)
        if piece.dtype.is_signed and piece.element_size() < 8:  # widening sign-extended: keep only the raw bits
            value.bitwise_and_((1 << (8 * piece.element_size())) - 1)
        self.used = e

    def flush(self) -> None:
        """Mix the buffered elements and add their sum to ``acc``."""
        z, v = self.z[:self.used], self.v[:self.used]
        self.acc.add_(_mix64_(z.bitwise_xor_(v), scratch=v).sum(dtype=torch.int64))
        self.used = 0


def device_fingerprint(tensors: Iterable[torch.Tensor], chunk: int | None = None) -> str:
    """Exact, order-of-reduction-independent fingerprint of a sequence of tensors, computed on their own device.

    Args:
        tensors: iterable of tensors (e.g. ``model.state_dict().values()``), any dtype with 1-, 2-, 4- or 8-byte
            elements (float32/16/64, bfloat16, int64/32, uint8, bool, ...), any device, contiguous or not.
        chunk: elements hashed at once (extra device memory: three int64 buffers of this length, or of the
            device's total element count if smaller); default ``CHUNK_ELEMENTS`` for the device type, else
            ``DEFAULT_CHUNK_ELEMENTS``. The result does not depend on it.

    Returns:
        16 lowercase hex digits (a 64-bit value).

    Construction, all arithmetic modulo 2**64: tensor i (position in the sequence) gets a seed k_i and a header
    term h_i, the two first 64-bit little-endian words of sha256(``"i:DTYPE:SHAPE"``). Element j (flat index in
    row-major logical order) contributes ``mix64((k_i + j * 0x9E3779B97F4A7C15) XOR b_ij)``, where b_ij is the
    element's raw bits zero-extended to 64 bits (floats are viewed as same-width integers, never converted, so
    -0.0 != 0.0 and NaN payloads count) and mix64 is the splitmix64 finalizer. The fingerprint is
    ``sum_i (h_i + sum_j contribution_ij)``.

    Why it is deterministic: the only reduction is wrapping 64-bit integer addition, which is associative and
    commutative, so CPU, CUDA, any thread count, any chunk size, any batching of tensors and any kernel reduction
    order give the same bits. Sums are accumulated on the device; one ``.item()`` per device (one for a usual
    state_dict) is the only transfer to the host.

    What it detects: mix64 is a bijection, so changing any single element (one flipped bit, -0.0 vs 0.0) always
    changes the sum. Other changes (swapped elements or tensors, reshapes, dtype changes, which move the position
    term or the seed) change it except with probability about 2**-64. It is NOT cryptographic: the sum of mixed
    terms is linear, so collisions can be constructed deliberately; it is for catching accidental differences
    between runs cheaply during training. ``weights_sha256`` stays the summary fingerprint of a run (old runs are
    compared by it); this one is a 64-bit, different function of the same bits and is not comparable to it.
    """
    header, sums = fingerprint_parts(tensors, chunk)
    return finish_fingerprint(header, [s.item() for s in sums])


def fingerprint_parts(tensors: Iterable[torch.Tensor], chunk: int | None = None) -> tuple[int, list[torch.Tensor]]:
    """``device_fingerprint`` before its transfer: the host part (the tensors' header terms) and one 0-dim int64
    sum per device, still on it, so that a caller can fetch them together with other values in one transfer."""
    tensors = list(tensors)
    totals: dict[torch.device, int] = {}  # elements per device: no buffer larger than what it will hold
    for t in tensors:
        totals[t.device] = totals.get(t.device, 0) + t.numel()
    batches: dict[torch.device, _Batch] = {}
    header_sum = 0
    with torch.no_grad():
        for index, t in enumerate(tensors):
            seed, header = _tensor_key(index, t)
            header_sum += header
            size = chunk or CHUNK_ELEMENTS.get(t.device.type, DEFAULT_CHUNK_ELEMENTS)
            for offset, piece in _flat_pieces(_bits(t), size):
                if t.device not in batches:
                    batches[t.device] = _Batch(t.device, min(size, totals[t.device]))
                batches[t.device].add(piece, seed, offset)
        for batch in batches.values():
            batch.flush()
    return header_sum, [batch.acc for batch in batches.values()]


def finish_fingerprint(header: int, sums: Iterable[int]) -> str:
    """16 hex digits from ``fingerprint_parts``' header and its per-device sums, fetched as Python ints."""
    return f"{(header + sum(sums)) & _MASK64:016x}"
