"""From duplicate edges to decisions: connected components, the keep policy, and what each removal says.

A duplicate group is a connected component of the edges every level found (two re-encodes of one
figure and a crop of it are one group even when the crop matched only one of them). One pair per group
survives: the first by `Node.keep_key` (the more permissive licence group, then the larger image, then
the longer caption, then the smaller id). Every other member is removed, and its detail names the kept
pair, the neighbour it matched directly (the first hop towards the kept pair on a breadth-first tree;
the kept pair itself when they matched directly), the level of that match and its similarity.

The components are computed on one worker from the edges alone: their number grows with the
duplicates found, not with the corpus.
"""

from __future__ import annotations

import json
from collections import defaultdict, deque
from collections.abc import Iterable
from dataclasses import dataclass

# Strongest evidence first: when two levels link the same pair, the stronger one is reported.
LEVELS = ("exact_image", "exact_caption", "phash", "image_embedding", "caption_embedding")
_LICENSE_RANK = {"commercial": 0, "noncommercial": 1, "other": 2}


@dataclass(frozen=True)
class Node:
    """What the keep policy needs to know of a pair."""

    id: str
    license_group: str | None = None
    pixels: int = 0
    caption_chars: int = 0

    def keep_key(self) -> tuple:
        return (_LICENSE_RANK.get(self.license_group or "", 3), -self.pixels, -self.caption_chars, self.id)


@dataclass(frozen=True)
class Edge:
    a: Node
    b: Node
    level: str
    similarity: float  # 1.0 for exact levels, 1 - distance/64 for pHash, cosine for embeddings

    def strength(self) -> tuple:
        return (LEVELS.index(self.level), -self.similarity)


@dataclass(frozen=True)
class Removal:
    id: str
    reason: str  # "duplicate" | "eval_overlap"
    kept: str  # the surviving pair (duplicate) or the evaluation item (eval_overlap)
    matched: str  # the item this one matched directly
    level: str
    similarity: float

    def detail(self) -> str:
        key = "kept" if self.reason == "duplicate" else "eval_item"
        return json.dumps(
            {
                key: self.kept,
                "matched": self.matched,
                "level": self.level,
                "similarity": round(self.similarity, 4),
            },
            sort_keys=True,
        )


def strongest(edges: Iterable[Edge]) -> dict[tuple[str, str], Edge]:
    """One edge per unordered pair: the strongest evidence for it."""
    best: dict[tuple[str, str], Edge] = {}
    for edge in edges:
        if edge.a.id == edge.b.id:
            continue
        key = (min(edge.a.id, edge.b.id), max(edge.a.id, edge.b.id))
        if key not in best or edge.strength() < best[key].strength():
            best[key] = edge
    return best


def resolve_duplicates(edges: Iterable[Edge]) -> list[Removal]:
    """The removals that leave one pair per connected component, sorted by id."""
    adjacency: dict[str, list[tuple[tuple, str, Edge]]] = defaultdict(list)
    nodes: dict[str, Node] = {}
    for edge in strongest(edges).values():
        nodes[edge.a.id], nodes[edge.b.id] = edge.a, edge.b
        adjacency[edge.a.id].append((edge.strength(), edge.b.id, edge))
        adjacency[edge.b.id].append((edge.strength(), edge.a.id, edge))
    for neighbours in adjacency.values():
        neighbours.sort(key=lambda item: (item[0], item[1]))

    removals: list[Removal] = []
    seen: set[str] = set()
    for start in sorted(nodes):
        if start in seen:
            continue
        component = _component(start, adjacency)
        seen |= component
        kept = min((nodes[n] for n in component), key=Node.keep_key).id
        # Breadth-first from the kept pair: each member's parent is its first hop towards it.
        queue, visited = deque([kept]), {kept}
        while queue:
            current = queue.popleft()
            for _, neighbour, edge in adjacency[current]:
                if neighbour in visited:
                    continue
                visited.add(neighbour)
                queue.append(neighbour)
                removals.append(Removal(neighbour, "duplicate", kept, current, edge.level, edge.similarity))
    return sorted(removals, key=lambda r: r.id)


def _component(start: str, adjacency: dict[str, list]) -> set[str]:
    component, stack = {start}, [start]
    while stack:
        for _, neighbour, _ in adjacency[stack.pop()]:
            if neighbour not in component:
                component.add(neighbour)
                stack.append(neighbour)
    return component


def eval_removal(pair_id: str, matches: Iterable[tuple[str, str, float]]) -> Removal | None:
    """The removal of a pair that matches evaluation items (eval id, level, similarity): the strongest."""
    best = min(matches, key=lambda m: (LEVELS.index(m[1]), -m[2], m[0]), default=None)
    if best is None:
        return None
    eval_id, level, similarity = best
    return Removal(pair_id, "eval_overlap", eval_id, eval_id, level, similarity)
