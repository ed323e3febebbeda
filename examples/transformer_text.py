"""A small transformer text classifier with Hugging Face-style batches, watched by TopologyMonitor.

    python examples/transformer_text.py            # about a minute on 2 CPU cores
    python examples/transformer_text.py --quick    # a few seconds (the test suite runs this)
    tensorboard --logdir lightning_topo_text

The task is synthetic (no download): sentences of a small made-up vocabulary, labelled by whether positive
words outnumber negative ones. Batches are dicts ``{"input_ids", "attention_mask", "labels"}`` padded per batch
to their longest sentence (dynamic padding, as ``DataCollatorWithPadding`` does); the encoder takes the padding
mask, so in evaluation PyTorch runs it on nested tensors. What TopologyMonitor does with it:

- every ``(B, T, D)`` layer output is reduced per sentence over its real tokens (``reduce="auto"`` is
  ``"token_mean"`` for 3-D outputs; the padding mask comes from the batch's ``attention_mask``);
- the token ids (``input``) and the position table (not aligned with the batch) are left out of the default
  layers, with a note;
- validation runs twice per epoch (``val_check_interval=0.5``): each run is measured and logged at its step.
"""

from __future__ import annotations

import argparse
from typing import Any

import lightning.pytorch as pl
import torch
import torch.nn.functional as F
from lightning.pytorch.loggers import TensorBoardLogger
from torch import nn
from torch.utils.data import DataLoader

from lightning_topo import TopologyMonitor

POSITIVE = ["good", "great", "fine", "nice", "happy", "bright", "calm", "kind"]
NEGATIVE = ["bad", "poor", "sad", "dark", "cold", "rude", "slow", "grim"]
NEUTRAL = ["the", "a", "day", "film", "food", "town", "road", "room", "was", "is", "very", "quite", "and", "but"]
VOCAB = ["<pad>", *POSITIVE, *NEGATIVE, *NEUTRAL]
INDEX = {word: i for i, word in enumerate(VOCAB)}


def sentences(n: int, seed: int) -> list[dict[str, torch.Tensor]]:
    """``n`` tokenised sentences of 4 to 24 words with a binary label (more positive than negative words)."""
    g = torch.Generator().manual_seed(seed)
    out = []
    while len(out) < n:
        length = int(torch.randint(4, 25, (1,), generator=g))
        words = [VOCAB[int(i)] for i in torch.randint(1, len(VOCAB), (length,), generator=g)]
        score = sum(w in POSITIVE for w in words) - sum(w in NEGATIVE for w in words)
        if score != 0:
            ids = torch.tensor([INDEX[w] for w in words])
            out.append({"input_ids": ids, "labels": torch.tensor(int(score > 0))})
    return out


def collate(examples: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """Dynamic padding: every batch is padded to its own longest sentence."""
    length = max(len(e["input_ids"]) for e in examples)
    ids = torch.zeros(len(examples), length, dtype=torch.long)
    mask = torch.zeros(len(examples), length, dtype=torch.long)
    for i, e in enumerate(examples):
        ids[i, : len(e["input_ids"])] = e["input_ids"]
        mask[i, : len(e["input_ids"])] = 1
    return {"input_ids": ids, "attention_mask": mask, "labels": torch.stack([e["labels"] for e in examples])}


class TextClassifier(pl.LightningModule):
    def __init__(self, d_model: int = 32, layers: int = 2, lr: float = 3e-3) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.embed = nn.Embedding(len(VOCAB), d_model, padding_idx=0)
        self.positions = nn.Embedding(64, d_model)
        block = nn.TransformerEncoderLayer(d_model, 4, 2 * d_model, dropout=0.1, batch_first=True)
        self.encoder = nn.TransformerEncoder(block, layers, enable_nested_tensor=True)
        self.pool = nn.Identity()  # the sentence vector (left out of the default layers: a copy of its input)
        self.head = nn.Linear(d_model, 2)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        positions = self.positions(torch.arange(input_ids.shape[1], device=input_ids.device))
        h = self.encoder(self.embed(input_ids) + positions, src_key_padding_mask=~attention_mask.bool())
        real = attention_mask.unsqueeze(2).to(h.dtype)
        return self.head(self.pool((h * real).sum(1) / real.sum(1)))

    def step(self, batch: dict[str, torch.Tensor], stage: str) -> torch.Tensor:
        logits = self(batch["input_ids"], batch["attention_mask"])
        loss = F.cross_entropy(logits, batch["labels"])
        self.log(f"{stage}/loss", loss, prog_bar=True)
        self.log(f"{stage}/acc", (logits.argmax(1) == batch["labels"]).float().mean(), prog_bar=True)
        return loss

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        return self.step(batch, "train")

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        self.step(batch, "val")

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.AdamW(self.parameters(), lr=self.hparams["lr"])


def main(argv: list[str] | None = None) -> TopologyMonitor:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--logdir", default="lightning_topo_text")
    parser.add_argument("--quick", action="store_true", help="a smoke test: tiny data, one epoch")
    args = parser.parse_args(argv)

    pl.seed_everything(0, verbose=False)
    n_train, n_val, epochs = (128, 64, 1) if args.quick else (4000, 512, args.epochs)
    train = DataLoader(sentences(n_train, seed=1), batch_size=32, shuffle=True, collate_fn=collate)  # type: ignore[arg-type]
    val = DataLoader(sentences(n_val, seed=2), batch_size=64, collate_fn=collate)  # type: ignore[arg-type]
    monitor = TopologyMonitor(n_samples=min(n_val, 512))  # layers=None: embed, encoder, head, output
    trainer = pl.Trainer(
        max_epochs=epochs,
        val_check_interval=0.5,
        logger=TensorBoardLogger(args.logdir, name="transformer_text"),
        callbacks=[monitor],
        accelerator="cpu",
        enable_progress_bar=not args.quick,
        enable_model_summary=False,
        log_every_n_steps=10,
    )
    trainer.fit(TextClassifier(), train, val)
    last = monitor.history[-1]["scalars"]
    for key in sorted(k for k in last if k.endswith(("/id_twonn", "/betti_0", "score"))):
        print(f"{key:<36} {last[key]:8.3f}")
    print(f"tensorboard --logdir {args.logdir}")
    return monitor


if __name__ == "__main__":
    main()
