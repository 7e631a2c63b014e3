"""Image datasets: scikit-learn digits (bundled), CIFAR-10 python batches, ImageFolder trees."""
from __future__ import annotations

import io
import pickle

import numpy as np
import torch

from dltune import storage
from dltune.config import DataConfig
from dltune.data.spec import DataSpec, Datasets
from dltune.data.batches import DatasetBatches, TensorBatches
from dltune.errors import DataError

CIFAR_TRAIN = [f"data_batch_{i}" for i in range(1, 6)]
CIFAR_TEST = "test_batch"
CIFAR_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR_STD = (0.2470, 0.2435, 0.2616)


def seeded_split(n: int, val_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Disjoint train / val index arrays, the same for every process with the same seed."""
    order = np.random.default_rng(seed).permutation(n)
    n_val = max(1, int(round(n * val_fraction)))
    return np.sort(order[n_val:]), np.sort(order[:n_val])


def _image_datasets(
    train_x: torch.Tensor, train_y: torch.Tensor, val_x: torch.Tensor, val_y: torch.Tensor,
    num_classes: int, batch_size: int, seed: int, rank: int, world: int,
    augment: bool = False,
) -> Datasets:
    spec = DataSpec(kind="image", task="multiclass", num_outputs=num_classes, input_shape=tuple(train_x.shape[1:]))
    transform = random_crop_flip if augment else None
    return Datasets(
        train=TensorBatches((train_x,), train_y, batch_size, True, seed, rank, world, transform),
        val=TensorBatches((val_x,), val_y, batch_size, False, seed, rank, world),
        spec=spec,
    )


def digits(cfg: DataConfig, batch_size: int, seed: int, rank: int, world: int) -> Datasets:
    """scikit-learn's bundled 8x8 digits (1797 images, 10 classes), split by seed."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    x = torch.tensor(bunch.images, dtype=torch.float32).unsqueeze(1) / 16.0
    y = torch.tensor(bunch.target, dtype=torch.long)
    tr, va = seeded_split(len(y), cfg.val_fraction, seed)
    return _image_datasets(x[tr], y[tr], x[va], y[va], 10, batch_size, seed, rank, world)


def random_crop_flip(batch: torch.Tensor, pad: int = 4) -> torch.Tensor:
    """Standard CIFAR augmentation on a batch: pad-and-crop by up to ``pad`` pixels, random h-flip."""
    n, _, h, w = batch.shape
    padded = torch.nn.functional.pad(batch, (pad, pad, pad, pad), mode="reflect")
    dx = torch.randint(0, 2 * pad + 1, (n,))
    dy = torch.randint(0, 2 * pad + 1, (n,))
    flip = torch.rand(n) < 0.5
    out = torch.empty_like(batch)
    for i in range(n):
        crop = padded[i, :, dy[i] : dy[i] + h, dx[i] : dx[i] + w]
        out[i] = crop.flip(-1) if flip[i] else crop
    return out


def _cifar_dir(path: str) -> str:
    """Accept the cifar-10-batches-py directory itself or the directory holding it."""
    nested = storage.join(path, "cifar-10-batches-py")
    return nested if storage.exists(nested) and storage.isdir(nested) else path


def _read_cifar_batch(path: str) -> tuple[np.ndarray, np.ndarray]:
    if not storage.exists(path):
        raise DataError(f"CIFAR-10 file missing: {storage.redact(path)} (expected {', '.join(CIFAR_TRAIN)}, {CIFAR_TEST})")
    try:
        # The CIFAR-10 python format is a pickle by definition; only point data.path at trusted copies.
        entry = pickle.load(io.BytesIO(storage.read_bytes(path)), encoding="bytes")
        data = np.asarray(entry[b"data"], dtype=np.uint8).reshape(-1, 3, 32, 32)
        labels = np.asarray(entry.get(b"labels", entry.get(b"fine_labels")), dtype=np.int64)
    except (pickle.UnpicklingError, KeyError, ValueError, TypeError, EOFError) as exc:
        raise DataError(f"not a CIFAR-10 python batch: {storage.redact(path)} ({exc})") from exc
    if len(data) != len(labels):
        raise DataError(f"CIFAR-10 batch {storage.redact(path)}: {len(data)} images but {len(labels)} labels")
    return data, labels


def _normalise(images: np.ndarray) -> torch.Tensor:
    x = torch.from_numpy(images).float() / 255.0
    mean = torch.tensor(CIFAR_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(CIFAR_STD).view(1, 3, 1, 1)
    return (x - mean) / std


def cifar10(cfg: DataConfig, batch_size: int, seed: int, rank: int, world: int) -> Datasets:
    """CIFAR-10 in its python-batch layout; validation is test_batch unless val_path is given.

    torchvision's CIFAR10 class checks the files against the official MD5 sums, so
    the batches are read here (same format) to accept re-packed or subset copies.
    """
    root = _cifar_dir(cfg.path)
    parts = [_read_cifar_batch(storage.join(root, name)) for name in CIFAR_TRAIN]
    train_x = np.concatenate([p[0] for p in parts])
    train_y = np.concatenate([p[1] for p in parts])
    val_x, val_y = _read_cifar_batch(storage.join(_cifar_dir(cfg.val_path), CIFAR_TEST) if cfg.val_path else storage.join(root, CIFAR_TEST))
    return _image_datasets(
        _normalise(train_x), torch.from_numpy(train_y), _normalise(val_x), torch.from_numpy(val_y),
        10, batch_size, seed, rank, world, augment=cfg.augment,
    )


def imagefolder(cfg: DataConfig, batch_size: int, seed: int, rank: int, world: int) -> Datasets:
    """A torchvision ImageFolder tree (one sub-directory per class) on local disk or NFS."""
    from torchvision import datasets, transforms

    for key, path in (("data.path", cfg.path), ("data.val_path", cfg.val_path)):
        if path and storage.is_remote(path):
            raise DataError(f"{key}: imagefolder reads local or NFS-mounted directories, not {storage.redact(path)}")
        if path and not storage.isdir(path):
            raise DataError(f"{key}: no such directory: {path}")
    size = cfg.image_size
    plain = [transforms.Resize(size), transforms.CenterCrop(size), transforms.ToTensor(), transforms.Normalize(CIFAR_MEAN, CIFAR_STD)]
    aug = [transforms.RandomResizedCrop(size, scale=(0.5, 1.0)), transforms.RandomHorizontalFlip()] if cfg.augment else [transforms.Resize(size), transforms.CenterCrop(size)]
    train_tf = transforms.Compose(aug + plain[2:])
    eval_tf = transforms.Compose(plain)
    try:
        train_set = datasets.ImageFolder(cfg.path, transform=train_tf)
        val_source = datasets.ImageFolder(cfg.val_path or cfg.path, transform=eval_tf)
    except (FileNotFoundError, RuntimeError) as exc:
        raise DataError(f"data.path: {storage.first_line(str(exc))}") from exc
    if cfg.val_path:
        val_set: torch.utils.data.Dataset = val_source
        if val_source.classes != train_set.classes:
            raise DataError(f"data.val_path: classes {val_source.classes} differ from data.path's {train_set.classes}")
    else:
        tr, va = seeded_split(len(train_set), cfg.val_fraction, seed)
        val_set = torch.utils.data.Subset(val_source, va.tolist())
        train_set = torch.utils.data.Subset(train_set, tr.tolist())  # type: ignore[assignment]
    classes = val_source.classes
    spec = DataSpec(kind="image", task="multiclass", num_outputs=len(classes), input_shape=(3, size, size), label_names=list(classes))
    return Datasets(
        train=DatasetBatches(train_set, batch_size, True, seed, rank, world, cfg.loader_workers),
        val=DatasetBatches(val_set, batch_size, False, seed, rank, world, cfg.loader_workers),
        spec=spec,
    )
