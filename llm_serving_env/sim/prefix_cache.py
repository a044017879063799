"""One GPU's cache of KV prefix blocks (automatic prefix caching).

A prompt is a chain of prefix blocks of ``block_tokens`` tokens each, named by hash ids: two
prompts whose first k ids agree share their first k blocks' KV (the ids of Mooncake's trace,
``hash_ids``, are such prefix hashes). As in vLLM's automatic prefix caching and SGLang's
radix cache:

* only full blocks are cached; a request admitted to a GPU reuses the longest run of leading
  blocks present there, holding a reference on each, and prefills only the rest;
* when a request's prefill completes, its full blocks join the cache (if a block's id is there
  already, the request takes a reference on it and its own copy is freed);
* a block with no reference stays resident until memory is needed: the engine then evicts
  unreferenced blocks, least recently used first, before it preempts anything.

The cache counts memory in the engine's KV blocks (``kv_blocks_per_block`` of them per prefix
block). It does not hold per-request state: the engine remembers which ids each request
references.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Container, Sequence

__all__ = ["PrefixCache", "leading_matches"]


def leading_matches(chain: Sequence[int], present: Container[int]) -> int:
    """How many leading ids of ``chain`` are in ``present`` (a prefix is only reusable up to
    its first missing block)."""
    k = 0
    for h in chain:
        if h not in present:
            break
        k += 1
    return k


class PrefixCache:
    """Reference-counted prefix blocks with LRU eviction of the unreferenced ones.

    Args:
        kv_blocks_per_block: engine KV blocks one prefix block occupies.
    """

    __slots__ = ("kv_blocks_per_block", "refs", "unreferenced")

    def __init__(self, kv_blocks_per_block: int) -> None:
        self.kv_blocks_per_block = kv_blocks_per_block
        self.refs: dict[int, int] = {}  # id -> references (0: resident, evictable)
        self.unreferenced: OrderedDict[int, None] = OrderedDict()  # least recently used first

    @property
    def kv_blocks(self) -> int:
        """Engine KV blocks the cache occupies (referenced or not)."""
        return len(self.refs) * self.kv_blocks_per_block

    @property
    def evictable_kv_blocks(self) -> int:
        """Engine KV blocks of unreferenced prefix blocks."""
        return len(self.unreferenced) * self.kv_blocks_per_block

    def match(self, chain: Sequence[int]) -> int:
        """Number of leading ids of ``chain`` present in the cache."""
        return leading_matches(chain, self.refs)

    def acquire(self, ids: list[int]) -> None:
        """Take one reference on each of ``ids`` (all present)."""
        for h in ids:
            if self.refs[h] == 0:
                del self.unreferenced[h]
            self.refs[h] += 1

    def insert(self, ids: list[int]) -> int:
        """Add ``ids`` with one reference each (the caller's); an id already present gains a
        reference instead. Returns how many were new."""
        new = 0
        for h in ids:
            count = self.refs.get(h)
            if count is None:
                self.refs[h] = 1
                new += 1
            else:
                if count == 0:
                    del self.unreferenced[h]
                self.refs[h] = count + 1
        return new

    def release(self, ids: list[int]) -> None:
        """Drop one reference on each of ``ids``; a block left without references becomes
        the most recently used evictable one."""
        for h in ids:
            count = self.refs[h] - 1
            self.refs[h] = count
            if count == 0:
                self.unreferenced[h] = None

    def evict(self, kv_blocks: int) -> int:
        """Evict unreferenced blocks, least recently used first, until at least ``kv_blocks``
        engine KV blocks are freed or none is left; returns the KV blocks freed."""
        freed = 0
        while freed < kv_blocks and self.unreferenced:
            h, _ = self.unreferenced.popitem(last=False)
            del self.refs[h]
            freed += self.kv_blocks_per_block
        return freed
