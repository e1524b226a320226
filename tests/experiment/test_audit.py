"""The determinism audit: identical gradients are reported identical; an injected nondeterministic layer is named."""
import torch
from torch import nn

from experiment.audit import audit_gradients, format_audit


class Noisy(nn.Module):
    """Adds fresh noise on every call (an unseeded-looking op), like a nondeterministic kernel would."""

    def forward(self, x):
        return x + torch.randn(x.shape) * 1e-3


def model(noisy: bool):
    torch.manual_seed(0)
    return nn.ModuleDict({"clean": nn.Linear(4, 3), "first": nn.Linear(4, 4), "noise": Noisy() if noisy else
                          nn.Identity(), "second": nn.Linear(4, 3), "bn": nn.BatchNorm1d(3)})


def loss_fn(m):
    x = torch.arange(32, dtype=torch.float32).view(8, 4) / 10
    branch = m["second"](torch.tanh(m["noise"](m["first"](x))))
    return (m["bn"](branch) ** 2).sum() + m["clean"](x).square().sum()


def test_deterministic_model_is_all_identical():
    rows = audit_gradients(model(noisy=False), loss_fn, repeats=3)
    assert all(r["identical"] for r in rows)
    assert format_audit(rows).startswith(f"{len(rows)} of {len(rows)}")


def test_injected_noise_is_named():
    rows = {r["name"]: r for r in audit_gradients(model(noisy=True), loss_fn)}
    assert not rows["second.weight"]["identical"] and not rows["first.weight"]["identical"]
    assert rows["clean.weight"]["identical"] and rows["clean.bias"]["identical"]
    assert rows["second.weight"]["max_abs_diff"] > 0
    assert "DIFFERS: second.weight" in format_audit(list(rows.values()))
