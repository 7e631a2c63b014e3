"""Digits with a small CNN under DDP: its own Dataset, model, loss and evaluation."""
import argparse

import torch
import torch.distributed as dist
import torch.nn.functional as F
from sklearn.datasets import load_digits
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, Dataset
from torch.utils.data.distributed import DistributedSampler


class Digits(Dataset):
    """scikit-learn's 8x8 digits; even indices train, odd ones validate."""

    def __init__(self, split):
        bunch = load_digits()
        keep = slice(0, None, 2) if split == "train" else slice(1, None, 2)
        self.x = torch.tensor(bunch.images[keep], dtype=torch.float32).unsqueeze(1) / 16.0
        self.y = torch.tensor(bunch.target[keep], dtype=torch.long)

    def __len__(self):
        return len(self.y)

    def __getitem__(self, i):
        return self.x[i], self.y[i]


class SmallNet(nn.Module):
    def __init__(self, width):
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(1, width, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                                      nn.Conv2d(width, 2 * width, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1))
        self.head = nn.Linear(2 * width, 10)

    def forward(self, x):
        return self.head(self.features(x).flatten(1))


def loss_fn(logits, y, smoothing):
    return F.cross_entropy(logits, y, label_smoothing=smoothing)


@torch.no_grad()
def evaluate(model, loader, smoothing):
    model.eval()
    total = correct = loss = 0.0
    for x, y in loader:
        logits = model(x)
        loss += loss_fn(logits, y, smoothing).item() * len(y)
        correct += (logits.argmax(1) == y).sum().item()
        total += len(y)
    sums = torch.tensor([loss, correct, total])
    dist.all_reduce(sums)
    model.train()
    return {"val_loss": (sums[0] / sums[2]).item(), "val_acc": (sums[1] / sums[2]).item()}


def main(ctx):
    parser = argparse.ArgumentParser()
    parser.add_argument("--lr", type=float, default=0.003)
    parser.add_argument("--width", type=int, default=16)
    parser.add_argument("--smoothing", type=float, default=0.05)
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--batch-size", type=int, default=64)
    args = ctx.parse_args(parser)
    rank = dist.get_rank()
    torch.manual_seed(0)
    model = SmallNet(args.width)
    ddp = DistributedDataParallel(model)
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr)
    if (state := ctx.load_checkpoint()) is not None:
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
    train_set, val_set = Digits("train"), Digits("val")
    sampler = DistributedSampler(train_set, shuffle=True)
    loader = DataLoader(train_set, batch_size=args.batch_size, sampler=sampler)
    val_loader = DataLoader(val_set, batch_size=256, sampler=DistributedSampler(val_set, shuffle=False))
    for epoch in range(ctx.epoch, ctx.config.train.epochs):
        sampler.set_epoch(epoch)
        for x, y in loader:
            loss = loss_fn(ddp(x), y, args.smoothing)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        metrics = evaluate(model, val_loader, args.smoothing)
        if rank == 0:
            print(f"epoch {epoch + 1}: {metrics}")
        ctx.report(metrics, checkpoint={"model": model.state_dict(), "optimizer": optimizer.state_dict()})
