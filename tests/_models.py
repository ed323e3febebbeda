"""Tiny models and data for driving a real Trainer in tests."""

from __future__ import annotations

from typing import Any

import lightning.pytorch as pl
import torch
import torch.nn.functional as F
from lightning.pytorch.loggers import Logger
from lightning.pytorch.utilities import rank_zero_only
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

# the keys a layer logs with TopologyMonitor's default descriptors and maxdim=1
DEFAULT_KEYS = [
    "betti_0",
    "betti_1",
    "total_persistence_0",
    "total_persistence_1",
    "entropy_0",
    "entropy_1",
    "id_twonn",
]


def make_data(n: int = 96, dim: int = 6, n_classes: int = 3, seed: int = 0) -> TensorDataset:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, dim, generator=g)
    y = torch.arange(n) % n_classes
    x[:, 0] += 3.0 * y
    return TensorDataset(x, y)


class TinyNet(pl.LightningModule):
    def __init__(self, dim: int = 6, hidden: int = 16, n_classes: int = 3, lr: float = 0.05) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.encoder = nn.Sequential(nn.Linear(dim, hidden), nn.ReLU())
        self.hidden = nn.Sequential(nn.Linear(hidden, hidden), nn.Tanh())
        self.head = nn.Linear(hidden, n_classes)
        self.loss_fn = nn.CrossEntropyLoss()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.hidden(self.encoder(x)))

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        x, y = batch
        loss = self.loss_fn(self(x), y)
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        x, y = batch
        self.log("val_loss", F.cross_entropy(self(x), y))

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=self.hparams["lr"])

    def train_dataloader(self) -> DataLoader:
        return DataLoader(make_data(), batch_size=16, shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return DataLoader(make_data(seed=1), batch_size=16)


class RecordingLogger(Logger):
    """Keeps every logged metric: ``{step: {key: value}}``."""

    def __init__(self) -> None:
        super().__init__()
        self.metrics: list[dict[str, float]] = []

    @property
    def name(self) -> str:
        return "recording"

    @property
    def version(self) -> str:
        return "0"

    @rank_zero_only
    def log_hyperparams(self, params: Any, *args: Any, **kwargs: Any) -> None:
        pass

    @rank_zero_only
    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        self.metrics.append(dict(metrics))

    def logged_keys(self) -> set[str]:
        return {k for m in self.metrics for k in m}

    def values(self, key: str) -> list[float]:
        return [m[key] for m in self.metrics if key in m]


def trainer(**kwargs: Any) -> pl.Trainer:
    defaults: dict[str, Any] = {
        "max_epochs": 2,
        "accelerator": "cpu",
        "devices": 1,
        "enable_progress_bar": False,
        "enable_model_summary": False,
        "enable_checkpointing": False,
        "logger": False,
        "num_sanity_val_steps": 0,
    }
    defaults.update(kwargs)
    return pl.Trainer(**defaults)


def labelled_loader(n: int = 300, seed: int = 0) -> DataLoader:
    """Three Gaussian classes in R^16 with means 4 e_c: ``(x, y)`` batches."""
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % 3
    x = torch.randn(n, 16, generator=g)
    x[torch.arange(n), y] += 4.0
    return DataLoader(TensorDataset(x, y), batch_size=50)


class _Map(nn.Module):
    def __init__(self, fn: Any) -> None:
        super().__init__()
        self.fn = fn

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fn(x)


class KnownOrder(nn.Module):
    """Four stages (``s0``..``s3``) then a linear head; each stage maps the *input* ``x``, so the geometry of each
    representation is chosen by construction: a network whose quality for a score is known in advance."""

    def __init__(self, stages: list[Any], seed: int = 0) -> None:
        super().__init__()
        self.s0, self.s1, self.s2, self.s3 = (_Map(fn) for fn in stages)
        self.head = nn.Linear(32, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x
        for stage in (self.s0, self.s1, self.s2, self.s3):
            h = stage(x)
        return self.head(h)

    @staticmethod
    def pairs() -> list[tuple[str, KnownOrder, KnownOrder]]:
        """``(score, better model, worse model)`` for every named score."""
        g = torch.Generator().manual_seed(1)
        wide = torch.randn(16, 32, generator=g)
        flat = torch.randn(2, 32, generator=g)
        noise_w = torch.randn(16, 32, generator=g)

        def plane(x: torch.Tensor) -> torch.Tensor:  # intrinsic dimension 2
            return x[:, :2] @ flat

        def spread(x: torch.Tensor) -> torch.Tensor:  # intrinsic dimension about 16
            return x @ wide

        def collapse(t: float) -> Any:
            """Move every example towards its class point (t = 1: the classes are points, up to 1% noise)."""

            def fn(x: torch.Tensor) -> torch.Tensor:
                points = 10.0 * nn.functional.one_hot(x[:, :3].argmax(dim=1), 32).float()
                return (1 - t) * (x @ wide) + t * points + 0.01 * (x @ noise_w)

            return fn

        simplifying = [collapse(t) for t in (0.0, 0.5, 0.9, 0.99)]
        early = [collapse(t) for t in (0.9, 0.99, 0.99, 0.99)]  # the complexity falls at once
        late = [collapse(t) for t in (0.0, 0.0, 0.0, 0.9)]  # it stays, then falls at the end
        return [
            ("id_last", KnownOrder([spread, spread, spread, plane]), KnownOrder([spread, spread, spread, spread])),
            ("phdim_last", KnownOrder([spread, spread, spread, plane]), KnownOrder([spread, spread, spread, spread])),
            ("lifespan_sum", KnownOrder(simplifying), KnownOrder(simplifying[:1] * 4)),
            ("decay", KnownOrder(early), KnownOrder(late)),
        ]


# sequence models -------------------------------------------------------------------------------------------------
def token_data(n: int = 96, vocab: int = 40, max_len: int = 12, seed: int = 0) -> list[dict[str, torch.Tensor]]:
    """Variable-length token sequences (no padding yet) with a class label: which third of the vocabulary the
    sequence's tokens mostly come from."""
    g = torch.Generator().manual_seed(seed)
    examples = []
    for i in range(n):
        label = i % 3
        length = int(torch.randint(3, max_len + 1, (1,), generator=g))
        low = 1 + label * (vocab - 1) // 3
        ids = torch.randint(low, low + (vocab - 1) // 3, (length,), generator=g)
        examples.append({"input_ids": ids, "label": torch.tensor(label)})
    return examples


def pad_collate(pad_to: int | None = None) -> Any:
    """An HF-style collator: pads to the longest sequence of the batch (or to ``pad_to``) with token 0."""

    def collate(examples: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
        length = pad_to or max(len(e["input_ids"]) for e in examples)
        ids = torch.zeros(len(examples), length, dtype=torch.long)
        mask = torch.zeros(len(examples), length, dtype=torch.long)
        for i, e in enumerate(examples):
            ids[i, : len(e["input_ids"])] = e["input_ids"]
            mask[i, : len(e["input_ids"])] = 1
        return {"input_ids": ids, "attention_mask": mask, "labels": torch.stack([e["label"] for e in examples])}

    return collate


class TinyTransformer(pl.LightningModule):
    """A padded-sequence classifier: token and learned position embeddings, ``nn.TransformerEncoder`` with a key
    padding mask (PyTorch's nested-tensor fast path in evaluation), mean pooling over real tokens, a head."""

    def __init__(self, vocab: int = 40, d: int = 16, n_classes: int = 3, nested: bool = True) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.embed = nn.Embedding(vocab, d, padding_idx=0)
        self.positions = nn.Embedding(64, d)
        layer = nn.TransformerEncoderLayer(d, 2, 32, dropout=0.0, batch_first=True)
        self.encoder = nn.TransformerEncoder(layer, 2, enable_nested_tensor=nested)
        self.head = nn.Linear(d, n_classes)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        t = input_ids.shape[1]
        h = self.embed(input_ids) + self.positions(torch.arange(t, device=input_ids.device))
        h = self.encoder(h, src_key_padding_mask=~attention_mask.bool())
        real = attention_mask.unsqueeze(2).to(h.dtype)
        return self.head((h * real).sum(1) / real.sum(1))

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        loss = F.cross_entropy(self(batch["input_ids"], batch["attention_mask"]), batch["labels"])
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        logits = self(batch["input_ids"], batch["attention_mask"])
        self.log("val_loss", F.cross_entropy(logits, batch["labels"]))

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.Adam(self.parameters(), lr=1e-2)

    def train_dataloader(self) -> DataLoader:
        return DataLoader(token_data(seed=1), batch_size=16, shuffle=True, collate_fn=pad_collate())  # type: ignore[arg-type]

    def val_dataloader(self) -> DataLoader:
        return DataLoader(token_data(), batch_size=16, collate_fn=pad_collate())  # type: ignore[arg-type]


class TinyCausalLM(pl.LightningModule):
    """A decoder-only language model: token + learned position embeddings, causal encoder blocks, ``(B, T, V)``
    logits; batches ``{"input_ids", "attention_mask", "labels": (B, T)}`` as Hugging Face's LM collators make."""

    def __init__(self, vocab: int = 400, d: int = 16) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.embed = nn.Embedding(vocab, d)
        self.positions = nn.Embedding(64, d)
        layer = nn.TransformerEncoderLayer(d, 2, 32, dropout=0.0, batch_first=True)
        self.blocks = nn.TransformerEncoder(layer, 2, enable_nested_tensor=False)
        self.lm_head = nn.Linear(d, vocab)

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        t = input_ids.shape[1]
        h = self.embed(input_ids) + self.positions(torch.arange(t, device=input_ids.device))
        causal = nn.Transformer.generate_square_subsequent_mask(t, device=input_ids.device)
        return self.lm_head(self.blocks(h, mask=causal, is_causal=True))

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        logits = self(batch["input_ids"])
        self.log("val_loss", F.cross_entropy(logits.flatten(0, 1), batch["labels"].flatten()))

    def val_dataloader(self) -> DataLoader:
        g = torch.Generator().manual_seed(0)
        ids = torch.randint(0, 400, (64, 24), generator=g)
        rows = [{"input_ids": r, "attention_mask": torch.ones(24, dtype=torch.long), "labels": r} for r in ids]
        return DataLoader(rows, batch_size=16)  # type: ignore[arg-type]


# images and a small CNN (feature maps for cubical persistence) ------------------------------------------
def images(n: int = 64, seed: int = 0) -> TensorDataset:
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % 2
    x = torch.rand(n, 1, 12, 12, generator=g)
    x[y == 1, :, 3:9, 3:9] += 1.0  # class 1: a bright square
    return TensorDataset(x, y)


class SmallCNN(nn.Module):
    def __init__(self, width: int = 6) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.conv1 = nn.Sequential(nn.Conv2d(1, width, 3, padding=1), nn.ReLU())
        self.conv2 = nn.Sequential(nn.Conv2d(width, width, 3, padding=1), nn.ReLU())
        self.conv3 = nn.Sequential(nn.Conv2d(width, width, 3, padding=1), nn.ReLU())
        self.conv4 = nn.Sequential(nn.Conv2d(width, width, 3, padding=1), nn.ReLU())
        self.head = nn.Linear(width, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv4(self.conv3(self.conv2(self.conv1(x))))
        return self.head(h.mean(dim=(2, 3)))
