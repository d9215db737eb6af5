"""CelebA's official split and its proportions, which the synthetic faces copy and the checks of
the configuration use (without the layout's readers, which load pandas)."""

from __future__ import annotations

OFFICIAL_SPLIT = {0: 162_770, 1: 19_867, 2: 19_962}
SPLIT_NAMES = {0: "train", 1: "val", 2: "test"}


def split_sizes(count: int) -> tuple[int, int, int]:
    """Train, val and test sizes of `count` images split in CelebA's official proportions."""
    total = sum(OFFICIAL_SPLIT.values())
    train = round(count * OFFICIAL_SPLIT[0] / total)
    val = round(count * (OFFICIAL_SPLIT[0] + OFFICIAL_SPLIT[1]) / total) - train
    return train, val, count - train - val
