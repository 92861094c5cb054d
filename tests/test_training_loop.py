"""The training step and its CUDA-graph form, exercised on the CPU: a stand-in graph backend replays the
captured step eagerly, so everything around the capture (static batch buffers, the warm-up that must not
count as training, optimizer state) is checked without a GPU. Also the device-side metrics, the learning
rate scaling and the validation cadence."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
import torch

from training.evaluation import classification_metrics, device_metrics
from training.hyperparameters import Hyperparameters
from training.model import TabularClassifier
from training.trainer import (
    DeviceSplit,
    GraphStepRunner,
    StepRunner,
    epoch_order,
    scaled_learning_rate,
    use_cuda_graph,
    validation_interval,
)


class ReplayEagerly:
    """A graph backend whose "replay" runs the captured step again: what a CUDA graph computes, eagerly."""

    def __init__(self) -> None:
        self.warmups = 0
        self.captures = 0

    def warmup(self, step: Callable[[], None], times: int) -> None:
        self.warmups += times
        for _ in range(times):
            step()

    def capture(self, step: Callable[[], None]) -> Callable[[], None]:
        self.captures += 1
        return step


def _split(rows: int = 512) -> DeviceSplit:
    generator = torch.Generator().manual_seed(0)
    numeric = torch.randn(rows, 6, generator=generator)
    categorical = torch.randint(1, 4, (rows, 1), generator=generator)
    labels = ((numeric[:, 0] + numeric[:, 1] * (categorical[:, 0] - 2)) > 0).long()
    return DeviceSplit(numeric, categorical, labels)


def _train(graphed: bool, steps: int = 12, batch: int = 32) -> tuple[TabularClassifier, torch.optim.Optimizer, float]:
    split = _split()
    torch.manual_seed(0)
    model = TabularClassifier(
        means=[0.0] * 6,
        stds=[1.0] * 6,
        cardinalities=[4],
        embedding_dim=3,
        hidden_units=(16, 16),
        dropout=0.2,  # draws from the RNG, which the warm-up must give back
        n_classes=2,
    )
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2, weight_decay=1e-4, fused=True)
    torch.manual_seed(1)
    runner: StepRunner
    if graphed:
        backend = ReplayEagerly()
        runner = GraphStepRunner(model, optimizer, split, batch_size=batch, amp_dtype=None, backend=backend)
        assert (backend.warmups, backend.captures) == (3, 1)
    else:
        runner = StepRunner(model, optimizer, split, batch_size=batch, amp_dtype=None)
    order = epoch_order(len(split), 0, 1, 0, torch.device("cpu"))
    for step in range(steps):
        runner.run(order[step * batch : (step + 1) * batch])
    return model, optimizer, float(runner.loss_sum)


def test_the_graphed_step_trains_exactly_what_the_eager_step_trains() -> None:
    """Fails if the batch buffer is not refilled before a replay, or if the warm-up steps (real optimizer
    steps, dropout draws) are not undone before the capture."""
    eager_model, eager_optimizer, eager_loss = _train(graphed=False)
    graph_model, graph_optimizer, graph_loss = _train(graphed=True)
    for name, tensor in eager_model.state_dict().items():
        assert torch.equal(tensor, graph_model.state_dict()[name]), name
    eager_state = eager_optimizer.state_dict()["state"]
    graph_state = graph_optimizer.state_dict()["state"]
    for index, state in eager_state.items():
        for key, tensor in state.items():
            assert torch.equal(tensor, graph_state[index][key]), (index, key)
    assert eager_loss == graph_loss


def test_cuda_graphs_are_for_a_single_cuda_process() -> None:
    cpu, cuda = torch.device("cpu"), torch.device("cuda", 0)
    assert use_cuda_graph(Hyperparameters(), cuda, 1) is True
    assert use_cuda_graph(Hyperparameters(), cuda, 4) is False  # collectives in a graph escape the NCCL watchdog
    assert use_cuda_graph(Hyperparameters(), cpu, 1) is False
    assert use_cuda_graph(Hyperparameters(cuda_graph="false"), cuda, 1) is False
    with pytest.raises(Exception, match="'cuda_graph': 'true' needs device 'cuda'"):
        use_cuda_graph(Hyperparameters(cuda_graph="true"), cpu, 1)
    with pytest.raises(Exception, match="not watched by the NCCL watchdog"):
        use_cuda_graph(Hyperparameters(cuda_graph="true"), cuda, 2)


@pytest.mark.parametrize("classes", [2, 3])
def test_device_metrics_equal_scikit_learns(classes: int) -> None:
    """Ties included (probabilities rounded to 2 decimals): roc_auc_score averages tied ranks."""
    rng = np.random.default_rng(3)
    probabilities = rng.dirichlet(np.ones(classes), size=4000)
    probabilities = np.round(probabilities, 2) + 1e-3
    probabilities = (probabilities / probabilities.sum(axis=1, keepdims=True)).astype(np.float32)
    labels = rng.integers(0, classes, size=4000)
    expected = classification_metrics(probabilities, labels)
    got = device_metrics(torch.from_numpy(probabilities), torch.from_numpy(labels))
    for name in ("auc", "accuracy", "log_loss"):
        assert got[name] == pytest.approx(expected[name], abs=1e-12), name


def test_learning_rate_follows_the_global_batch() -> None:
    base = Hyperparameters(learning_rate=1e-3)
    assert scaled_learning_rate(base, 256) == pytest.approx(1e-3)
    assert scaled_learning_rate(base, 8192 * 4) == pytest.approx(1e-3 * (8192 * 4 / 256) ** 0.5)
    assert scaled_learning_rate(Hyperparameters(learning_rate_scaling="linear"), 1024) == pytest.approx(4e-3)
    assert scaled_learning_rate(Hyperparameters(learning_rate_scaling="none"), 1024) == pytest.approx(1e-3)


def test_tiny_epochs_are_validated_every_few_epochs_large_ones_every_epoch() -> None:
    assert validation_interval(Hyperparameters(), 1_000_000) == 1
    assert validation_interval(Hyperparameters(), 65_536) == 1
    assert validation_interval(Hyperparameters(), 20_000) == 4
    assert validation_interval(Hyperparameters(validation_interval=2), 20) == 2
