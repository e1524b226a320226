"""utils/fingerprint.py ``device_fingerprint``: equal to a pure-Python big-int reference, bit-exact, and the same
for any thread count, process and device."""
from __future__ import annotations

import hashlib
import random
import subprocess
import sys

import pytest
import torch

from tests.conftest import REPO
from utils.fingerprint import device_fingerprint

M64 = (1 << 64) - 1
DTYPES = (torch.float32, torch.bfloat16, torch.float16, torch.float64, torch.int64, torch.int32, torch.uint8,
          torch.bool)
# A small seeded model, built the same way here and in the child processes.
MODEL_SRC = """
import torch
torch.manual_seed(1234)
model = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3), torch.nn.BatchNorm2d(8), torch.nn.ReLU(), torch.nn.Flatten(),
                            torch.nn.Linear(8 * 6 * 6, 5))
"""


# --- Pure-Python reference: element by element, big ints reduced mod 2**64 ----------------------------------------
def mix64_ref(z: int) -> int:
    """splitmix64 finalizer on an unsigned 64-bit Python int."""
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & M64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & M64
    return z ^ (z >> 31)


def element_bits(t: torch.Tensor) -> list[int]:
    """Unsigned raw bits of every element of ``t`` in row-major logical order, read from its little-endian bytes."""
    raw = t.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes()
    size = t.element_size()
    return [int.from_bytes(raw[i:i + size], "little") for i in range(0, len(raw), size)]


def fingerprint_ref(tensors) -> str:
    total = 0
    for i, t in enumerate(tensors):
        header = f"{i}:{t.dtype}:{','.join(str(s) for s in t.shape)}".encode()
        digest = hashlib.sha256(header).digest()
        seed, head = int.from_bytes(digest[:8], "little"), int.from_bytes(digest[8:16], "little")
        total += head
        for j, bits in enumerate(element_bits(t)):
            total += mix64_ref(((seed + j * 0x9E3779B97F4A7C15) & M64) ^ bits)
    return f"{total & M64:016x}"


def random_tensor(dtype: torch.dtype, shape: tuple[int, ...], gen: torch.Generator) -> torch.Tensor:
    """Random values over the dtype's whole bit range for integers, signed normals (some -0.0) for floats."""
    if dtype == torch.bool:
        return torch.randint(0, 2, shape, generator=gen).bool()
    if dtype.is_floating_point:
        t = torch.randn(shape, generator=gen, dtype=torch.float64).mul(1e3).to(dtype)
        if t.numel():
            t.view(-1)[0] = -0.0
        return t
    info = torch.iinfo(dtype)
    return torch.randint(info.min, info.max, shape, generator=gen, dtype=torch.int64).to(dtype)


def small_model_state() -> dict[str, torch.Tensor]:
    scope: dict = {}
    exec(MODEL_SRC, scope)
    return scope["model"].state_dict()


# --- Tests ------------------------------------------------------------------------------------------------------
def test_int64_multiplication_and_sum_wrap_modulo_2_64():
    """The device code relies on int64 ``*`` and ``sum`` keeping the low 64 bits, like unsigned arithmetic."""
    rng = random.Random(0)
    a = [rng.getrandbits(64) for _ in range(1000)]
    b = [rng.getrandbits(64) for _ in range(1000)]

    def signed(v: int) -> int:
        return v - (1 << 64) if v >> 63 else v

    ta = torch.tensor([signed(v) for v in a], dtype=torch.int64)
    tb = torch.tensor([signed(v) for v in b], dtype=torch.int64)
    assert [v & M64 for v in (ta * tb).tolist()] == [(x * y) & M64 for x, y in zip(a, b)]
    assert ta.sum(dtype=torch.int64).item() & M64 == sum(a) & M64


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_equals_the_pure_python_reference(dtype):
    gen = torch.Generator().manual_seed(DTYPES.index(dtype))
    tensors = [random_tensor(dtype, (5, 7), gen), random_tensor(dtype, (), gen), random_tensor(dtype, (0, 3), gen)]
    assert device_fingerprint(tensors) == fingerprint_ref(tensors)


def test_mixed_dtypes_non_contiguous_and_chunking():
    gen = torch.Generator().manual_seed(7)
    tensors = [random_tensor(d, (3, 4, 5), gen) for d in DTYPES]
    tensors[0] = tensors[0].permute(2, 0, 1)  # non-contiguous, hashed in its logical order
    tensors[1] = tensors[1][:, ::2]
    tensors.append(torch.arange(6.0).expand(4, 6))  # stride 0
    assert not any(t.is_contiguous() for t in (tensors[0], tensors[1], tensors[-1]))
    expected = fingerprint_ref(tensors)
    assert device_fingerprint(tensors) == expected
    contiguous = [t.contiguous() for t in tensors]
    assert device_fingerprint(contiguous) == expected
    for chunk in (1, 3, 7, 20):  # also splits the non-contiguous tensors row by row, below and above one row
        assert device_fingerprint(tensors, chunk=chunk) == expected


def test_one_flipped_bit_in_a_model_parameter_changes_it():
    state = small_model_state()
    before = device_fingerprint(state.values())
    assert before == device_fingerprint(small_model_state().values()) and len(before) == 16
    weight = state["4.weight"]
    assert weight.dtype == torch.float32
    weight.view(torch.int32).view(-1)[17] ^= 1  # lowest mantissa bit of one value
    assert device_fingerprint(state.values()) != before


def test_swaps_reshapes_and_signed_zero_change_it():
    gen = torch.Generator().manual_seed(3)
    a, b = torch.randn(4, 6, generator=gen), torch.randn(4, 6, generator=gen)
    base = device_fingerprint([a, b])
    swapped = a.clone().view(-1)
    swapped[[2, 9]] = swapped[[9, 2]]
    assert device_fingerprint([swapped.view(4, 6), b]) != base  # two elements swapped
    assert device_fingerprint([b, a]) != base  # two tensors swapped
    assert device_fingerprint([a.reshape(6, 4), b]) != base  # same bits, other shape
    assert device_fingerprint([a.view(torch.int32), b]) != base  # same bits, other dtype
    assert device_fingerprint([a, b, torch.zeros(0)]) != base  # an empty tensor still counts
    assert device_fingerprint([torch.tensor([0.0])]) != device_fingerprint([torch.tensor([-0.0])])
    nan1 = torch.tensor([0x7FC00001], dtype=torch.int32).view(torch.float32)
    nan2 = torch.tensor([0x7FC00002], dtype=torch.int32).view(torch.float32)
    assert device_fingerprint([nan1]) != device_fingerprint([nan2])


def test_same_for_one_and_two_threads():
    gen = torch.Generator().manual_seed(5)
    tensors = [torch.randn(1 << 18, generator=gen), torch.randint(-2**62, 2**62, (1 << 17,), generator=gen)]
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = device_fingerprint(tensors)
        torch.set_num_threads(2)
        two = device_fingerprint(tensors)
    finally:
        torch.set_num_threads(threads)
    assert one == two


def test_same_in_two_processes():
    code = MODEL_SRC + "from utils.fingerprint import device_fingerprint\nprint(device_fingerprint(" \
                       "model.state_dict().values()))\n"
    # Both children start at once: the import of torch is most of their time.
    children = [subprocess.Popen([sys.executable, "-c", code], cwd=REPO, stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outputs = [child.communicate(timeout=120) for child in children]
    for child, (_, err) in zip(children, outputs):
        assert child.returncode == 0, err[-2000:]
    printed = [out.strip() for out, _ in outputs]
    assert printed[0] == printed[1] == device_fingerprint(small_model_state().values())


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_equals_cpu():
    gen = torch.Generator().manual_seed(11)
    tensors = [random_tensor(d, (33, 65), gen) for d in DTYPES]
    tensors.append(torch.randn(3_000_001, generator=gen))  # many blocks in the CUDA reduction
    tensors.extend(small_model_state().values())
    cpu = device_fingerprint(tensors)
    on_cuda = [t.cuda() for t in tensors]
    assert device_fingerprint(on_cuda) == cpu
    assert device_fingerprint([on_cuda[0].t()]) == device_fingerprint([tensors[0].t()])
    assert device_fingerprint(on_cuda, chunk=1 << 20) == cpu
    assert device_fingerprint([t if i % 2 else t.cuda() for i, t in enumerate(tensors)]) == cpu  # mixed devices
