"""The held-out split, by concept: every set and skin tone of a base emoji lands on the same side."""
from __future__ import annotations

import hashlib


def _unit(key: str, seed: int) -> float:
    digest = hashlib.sha256(f"t2igan-emoji:{seed}:{key}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2.0**64


def split_of(base: str, seed: int = 0, test_fraction: float = 0.05) -> str:
    """``'test'`` or ``'train'`` for a base emoji's ``unified`` code (sha256 of seed + code)."""
    return "test" if _unit(base.upper(), seed) < test_fraction else "train"


class _Groups:
    """Union-find over base codes (for bases that must share a split)."""

    def __init__(self) -> None:
        self.parent: dict[str, str] = {}

    def find(self, x: str) -> str:
        self.parent.setdefault(x, x)
        while self.parent[x] != x:
            self.parent[x] = self.parent[self.parent[x]]
            x = self.parent[x]
        return x

    def union(self, a: str, b: str) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            lo, hi = sorted((ra, rb))
            self.parent[hi] = lo  # root = smallest code: deterministic
