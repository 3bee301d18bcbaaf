"""A dependency graph of fragments with a Kahn-style ready queue.

Nodes are integers (indexes into the run's fragment list); edges are added
without checks, and cycles are found once, in linear time, by ``order()``.
e3's DAG checks for cycles on every ``add_vertex`` (quadratic: 2,000
vertices took 23 s here), which a 10,000-fragment suite cannot afford.
"""

from __future__ import annotations

import heapq


class Graph:
    def __init__(self, size: int = 0):
        self.succs: list[list[int]] = [[] for _ in range(size)]
        self.npreds: list[int] = [0] * size

    def __len__(self) -> int:
        return len(self.npreds)

    def add_node(self) -> int:
        self.succs.append([])
        self.npreds.append(0)
        return len(self.npreds) - 1

    def add_edge(self, before: int, after: int) -> None:
        """``after`` may start only once ``before`` is done."""
        self.succs[before].append(after)
        self.npreds[after] += 1

    def order(self) -> tuple[list[int], list[int]]:
        """A topological order, and the nodes left out of it (on or behind a cycle)."""
        left = list(self.npreds)
        queue = [n for n, count in enumerate(left) if count == 0]
        for node in queue:  # the list grows while we walk it
            for succ in self.succs[node]:
                left[succ] -= 1
                if left[succ] == 0:
                    queue.append(succ)
        stuck = [n for n, count in enumerate(left) if count > 0]
        return queue, stuck

    def longest_paths(self, weights: list[float]) -> list[float]:
        """For each node, the heaviest path from it to the end of the graph.

        This is the critical-path priority: a node on a long chain should
        start before a node with nothing behind it.
        """
        topo, _ = self.order()
        longest = list(weights)
        for node in reversed(topo):
            succs = self.succs[node]
            if succs:
                longest[node] = weights[node] + max(longest[s] for s in succs)
        return longest


    def depths(self) -> list[int]:
        """For each node, the longest chain of predecessors leading to it."""
        topo, _ = self.order()
        depth = [0] * len(self.npreds)
        for node in topo:
            for succ in self.succs[node]:
                if depth[succ] <= depth[node]:
                    depth[succ] = depth[node] + 1
        return depth


class ReadyQueue:
    """Fragments whose predecessors are all done, highest priority first."""

    def __init__(self, graph: Graph, priority: list[float]):
        self.graph = graph
        self.priority = priority
        self.waiting = list(graph.npreds)
        self.heap: list[tuple[float, int]] = [
            (-priority[n], n) for n, count in enumerate(self.waiting) if count == 0
        ]
        heapq.heapify(self.heap)

    def __bool__(self) -> bool:
        return bool(self.heap)

    def pop(self) -> int:
        return heapq.heappop(self.heap)[1]

    def peek(self) -> int:
        return self.heap[0][1]

    def push(self, node: int) -> None:
        """Put back a node that was popped but could not start yet."""
        heapq.heappush(self.heap, (-self.priority[node], node))

    def done(self, node: int) -> None:
        """Mark ``node`` finished: successors with no other wait become ready."""
        for succ in self.graph.succs[node]:
            self.waiting[succ] -= 1
            if self.waiting[succ] == 0:
                heapq.heappush(self.heap, (-self.priority[succ], succ))
