"""The tabular model: numeric standardisation and category embeddings inside the module, then an MLP.

A classifier has one output per class (logits); a regressor one output, the standardised target
(y - mean) / std, which `predict` and the export wrappers turn back into the target's own units.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn


class TabularClassifier(nn.Module):
    """Raw numeric values and category indices in, class logits out.

    Standardisation uses buffers (the training data's mean and std), so it is exported with the graph.
    Index 0 of every embedding is the reserved unknown category: `padding_idx` keeps it a zero vector that
    training never moves, so an unseen category contributes nothing rather than a random direction.
    """

    mean: torch.Tensor
    inv_std: torch.Tensor

    def __init__(
        self,
        *,
        means: Sequence[float],
        stds: Sequence[float],
        cardinalities: Sequence[int],
        embedding_dim: int,
        hidden_units: Sequence[int],
        dropout: float,
        n_classes: int,
        target_scale: tuple[float, float] | None = None,
    ) -> None:
        super().__init__()
        self.regression = target_scale is not None
        if target_scale is not None:
            # Buffers, so the de-standardisation is part of the exported graph and of every checkpoint.
            self.register_buffer("target_mean", torch.tensor(float(target_scale[0]), dtype=torch.float32))
            self.register_buffer("target_std", torch.tensor(float(target_scale[1]), dtype=torch.float32))
        self.register_buffer("mean", torch.tensor(list(means), dtype=torch.float32))
        self.register_buffer("inv_std", 1.0 / torch.tensor(list(stds), dtype=torch.float32))
        self.embeddings = nn.ModuleList(
            nn.Embedding(cardinality, embedding_dim, padding_idx=0) for cardinality in cardinalities
        )
        width = len(means) + embedding_dim * len(cardinalities)
        layers: list[nn.Module] = []
        for units in hidden_units:
            layers += [nn.Linear(width, units), nn.ReLU(), nn.Dropout(dropout)]
            width = units
        self.body = nn.Sequential(*layers)
        self.head = nn.Linear(width, n_classes)

    def forward(self, numeric: torch.Tensor, categorical_index: torch.Tensor | None = None) -> torch.Tensor:
        parts = [(numeric - self.mean) * self.inv_std]
        if categorical_index is not None:
            parts += [emb(categorical_index[:, i]) for i, emb in enumerate(self.embeddings)]
        return self.head(self.body(torch.cat(parts, dim=1) if len(parts) > 1 else parts[0]))

    def predict(self, numeric: torch.Tensor, categorical_index: torch.Tensor | None = None) -> torch.Tensor:
        """What the exported graph answers: class probabilities [N, K], or predictions [N] in target units."""
        out = self(numeric, categorical_index).float()
        if self.regression:
            return out[:, 0] * self.target_std + self.target_mean
        return torch.softmax(out, dim=1)


class NumericProbabilities(nn.Module):
    """Export wrapper for models without categorical features: probabilities instead of logits (regression:
    predictions in target units)."""

    def __init__(self, model: TabularClassifier) -> None:
        super().__init__()
        self.model = model

    def forward(self, numeric: torch.Tensor) -> torch.Tensor:
        return self.model.predict(numeric)


class MixedProbabilities(nn.Module):
    """Export wrapper for models with categorical features (indices; strings are mapped in ONNX in front)."""

    def __init__(self, model: TabularClassifier) -> None:
        super().__init__()
        self.model = model

    def forward(self, numeric: torch.Tensor, categorical_index: torch.Tensor) -> torch.Tensor:
        return self.model.predict(numeric, categorical_index)
