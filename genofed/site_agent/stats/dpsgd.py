"""One site's local update for the ``train`` analysis: DP-SGD with Opacus, or plain SGD.

Pure: features, labels, the global weights, explicit parameters and a
``torch.Generator`` in; updated weights and what was done out. No file,
network, Flower, logging or clock.

With a noise multiplier above 0 the update is DP-SGD: Opacus's
``PrivacyEngine`` (RDP accountant) makes the model, optimizer and data loader
private with **Poisson sampling** at rate ``q = 1 / ceil(n / batch_size)``
(Opacus's own rule: the expected batch is ``batch_size``), clips every
per-sample gradient to ``clipping_norm`` and adds Gaussian noise of standard
deviation ``noise_multiplier * clipping_norm`` to each step's sum. One local
update is ``local_epochs / q`` steps, each a Poisson-subsampled Gaussian
mechanism, which is exactly what the site's ledger charges.

Randomness: Opacus's ``secure_mode`` needs ``torchcsprng``, which cannot be
installed here (no distribution in the package index; the project is
archived upstream and was built for torch 1.x), so the Poisson
sampling and the noise both come from the ``generator`` passed in: a torch
(Mersenne Twister) generator that the site seeds from ``os.urandom`` for
every update. It is not a cryptographically secure sampler, and the
floating-point noise is not protected against the attacks ``secure_mode``
guards against; provenance says so for every update.

With ``noise_multiplier = 0`` the update is ordinary minibatch SGD (shuffled
batches of ``batch_size``, no clipping, no noise): an exact function of the
data, which sites release only in ``plain`` mode.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from genofed.common.wire.train import parameter_shapes


class RiskModel(nn.Module):
    """Logistic regression (``linear``) or a one-hidden-layer ReLU MLP (``hidden``, ``output``)."""

    def __init__(self, model: str, n_features: int, hidden: int) -> None:
        super().__init__()
        self.kind = model
        if model == "logistic":
            self.linear = nn.Linear(n_features, 1)
        else:
            self.hidden = nn.Linear(n_features, hidden)
            self.output = nn.Linear(hidden, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.kind == "logistic":
            out: torch.Tensor = self.linear(x)
        else:
            out = self.output(torch.relu(self.hidden(x)))
        return out.squeeze(-1)


@dataclass(frozen=True)
class LocalUpdate:
    """A site's updated weights and the DP-SGD steps behind them."""

    weights: dict[str, np.ndarray]
    steps: int
    sampling_rate: float
    #: what Opacus's RDP accountant recorded: (noise multiplier, sampling rate, steps)
    opacus_history: tuple[tuple[float, float, int], ...]


def build_model(
    model: str, n_features: int, hidden: int, weights: dict[str, np.ndarray]
) -> RiskModel:
    """A :class:`RiskModel` holding ``weights`` (float32, names of :func:`parameter_shapes`)."""
    module = RiskModel(model, n_features, hidden)
    shapes = parameter_shapes(model, n_features, hidden)
    if set(weights) != set(shapes) or any(weights[k].shape != s for k, s in shapes.items()):
        raise ValueError("weights do not match the model's parameters")
    module.load_state_dict(
        {k: torch.from_numpy(np.asarray(v, np.float32)) for k, v in weights.items()}
    )
    return module


def local_update(
    x: np.ndarray,
    y: np.ndarray,
    weights: dict[str, np.ndarray],
    *,
    model: str,
    hidden: int,
    local_epochs: int,
    batch_size: int,
    learning_rate: float,
    clipping_norm: float,
    noise_multiplier: float,
    generator: torch.Generator,
) -> LocalUpdate:
    """Train from ``weights`` on ``(x, y)`` for ``local_epochs`` (see the module docstring)."""
    n, p = x.shape
    module = build_model(model, p, hidden, weights)
    optimizer = torch.optim.SGD(module.parameters(), lr=learning_rate)
    dataset = TensorDataset(
        torch.from_numpy(np.asarray(x, np.float32)), torch.from_numpy(np.asarray(y, np.float32))
    )
    loader = DataLoader(dataset, batch_size=min(batch_size, n), shuffle=True, generator=generator)
    criterion = nn.BCEWithLogitsLoss()
    if noise_multiplier <= 0:
        module.train()
        for _ in range(local_epochs):
            for xb, yb in loader:
                optimizer.zero_grad()
                criterion(module(xb), yb).backward()
                optimizer.step()
        return LocalUpdate(_weights(module), local_epochs * len(loader), 1.0, ())

    from opacus import PrivacyEngine

    with warnings.catch_warnings():
        # "Secure RNG turned off": torchcsprng is unavailable (module docstring says so).
        warnings.simplefilter("ignore")
        engine = PrivacyEngine(accountant="rdp", secure_mode=False)
        private, dp_optimizer, dp_loader = engine.make_private(
            module=module,
            optimizer=optimizer,
            data_loader=loader,
            noise_multiplier=noise_multiplier,
            max_grad_norm=clipping_norm,
            poisson_sampling=True,
            noise_generator=generator,
        )
        sampling_rate = 1.0 / len(loader)
        steps = 0
        private.train()
        for _ in range(local_epochs):
            for xb, yb in dp_loader:
                dp_optimizer.zero_grad()
                if len(xb):
                    criterion(private(xb), yb).backward()
                else:  # an empty Poisson batch still takes a (noise-only) step
                    for param in private.parameters():
                        param.grad_sample = torch.zeros((0, *param.shape))
                dp_optimizer.step()
                steps += 1
        history = tuple((float(z), float(q), int(n)) for z, q, n in engine.accountant.history)
        private.remove_hooks()
    return LocalUpdate(_weights(module), steps, sampling_rate, history)


def _weights(module: nn.Module) -> dict[str, np.ndarray]:
    return {k: v.detach().cpu().numpy().astype(np.float32) for k, v in module.state_dict().items()}


def expected_steps(n: int, batch_size: int, local_epochs: int) -> tuple[float, int]:
    """(Poisson sampling rate, steps) of one DP-SGD update on ``n`` samples, as Opacus runs it."""
    batches = math.ceil(n / min(batch_size, n))
    return 1.0 / batches, local_epochs * batches


__all__ = ["LocalUpdate", "RiskModel", "build_model", "expected_steps", "local_update"]
