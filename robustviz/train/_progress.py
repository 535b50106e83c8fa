"""What a training run shows while it runs: a progress bar per epoch (tqdm, rank 0 only,
when ``progress`` is on) and one summary line after each."""
from __future__ import annotations


def epoch_bar(total: int, epoch: int, epochs: int, *, enabled: bool):
    """The bar of one epoch's batches (left behind by none: ``leave=False``)."""
    from robustviz._utils import tqdm

    return tqdm(total=total, desc=f"epoch {epoch}/{epochs}", leave=False, disable=not enabled)


def epoch_line(record: dict, epochs: int) -> str:
    """An epoch record as one line: loss, validation accuracies, learning rate, time."""
    parts = [f"epoch {record['epoch']}/{epochs}", f"loss {record['loss']:.4f}"]
    if record.get("val_clean_acc") is not None:
        parts.append(f"val clean {100 * record['val_clean_acc']:.1f}%")
    if record.get("val_robust_acc") is not None:
        parts.append(f"robust {100 * record['val_robust_acc']:.1f}%")
    parts.append(f"lr {record['lr']:.3g}")
    parts.append(f"{record['time_s']:.1f}s")
    return "  ".join(parts)


def write_line(record: dict, epochs: int) -> None:
    """Print :func:`epoch_line` without breaking an open bar."""
    from robustviz._utils import tqdm

    tqdm.write(epoch_line(record, epochs))
