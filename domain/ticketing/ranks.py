"""Order statistics over a line: who is still in it, and how many are ahead of someone.

A line numbers its members 1, 2, 3, ... in the order they joined (their slot), and members
leave from anywhere. `RankTree` is a Fenwick tree over the slots holding 1 for a member
still present and 0 for one who left, so a position (1 + the present members ahead) is a
prefix sum: O(log n) to read, O(log n) to leave, amortised O(log n) to join at the back.
One leave near the head moves everyone behind it, but costs nothing per follower: their
positions are derived when asked.
"""

from __future__ import annotations

from collections.abc import Iterator


class RankTree:
    """Slots 1..`size`, each present or gone; positions among the present ones."""

    __slots__ = ("_count", "_present", "_tree")

    def __init__(self) -> None:
        # Index 0 is unused: Fenwick trees are 1-based. `_tree[i]` counts the present slots
        # in (i - lowbit(i), i].
        self._tree: list[int] = [0]
        self._present = bytearray(1)
        self._count = 0

    def copy(self) -> RankTree:
        twin = RankTree.__new__(RankTree)
        twin._tree = list(self._tree)
        twin._present = bytearray(self._present)
        twin._count = self._count
        return twin

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, RankTree):
            return NotImplemented
        # The tree is a function of which slots are present.
        return self._present == other._present

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"RankTree(size={self.size}, present={self._count})"

    def __len__(self) -> int:
        """How many slots are present."""
        return self._count

    @property
    def size(self) -> int:
        """How many slots were ever added (the last slot's number)."""
        return len(self._tree) - 1

    def __contains__(self, slot: object) -> bool:
        return isinstance(slot, int) and 1 <= slot <= self.size and bool(self._present[slot])

    def append(self) -> int:
        """Add a present slot at the back; its number (`size` + 1)."""
        slot = len(self._tree)
        covered_from = slot - (slot & -slot)
        # The new node covers (covered_from, slot]: the present slots in
        # (covered_from, slot - 1], plus itself.
        self._tree.append(1 + self.count_upto(slot - 1) - self.count_upto(covered_from))
        self._present.append(1)
        self._count += 1
        return slot

    def remove(self, slot: int) -> None:
        """Mark a present slot gone. KeyError if it is not present."""
        if slot not in self:
            raise KeyError(slot)
        self._present[slot] = 0
        self._count -= 1
        tree = self._tree
        size = len(tree)
        while slot < size:
            tree[slot] -= 1
            slot += slot & -slot

    def count_upto(self, slot: int) -> int:
        """How many present slots are numbered <= `slot`."""
        slot = min(slot, self.size)
        total = 0
        tree = self._tree
        while slot > 0:
            total += tree[slot]
            slot -= slot & -slot
        return total

    def rank(self, slot: int) -> int:
        """The 1-based position of a present slot among the present ones. KeyError if gone."""
        if slot not in self:
            raise KeyError(slot)
        return self.count_upto(slot)

    def select(self, rank: int) -> int:
        """The slot at 1-based position `rank` among the present ones. IndexError if none."""
        if not 1 <= rank <= self._count:
            raise IndexError(rank)
        tree = self._tree
        size = self.size
        slot = 0
        step = 1 << size.bit_length()
        while step:
            ahead = slot + step
            if ahead <= size and tree[ahead] < rank:
                slot = ahead
                rank -= tree[ahead]
            step >>= 1
        return slot + 1

    def __iter__(self) -> Iterator[int]:
        """The present slots, in order."""
        present = self._present
        return (slot for slot in range(1, len(present)) if present[slot])
