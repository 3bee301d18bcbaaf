"""A dependency graph of fragments with a Kahn-style ready queue, and the
search for cycles among testcases' dependencies (Tarjan's algorithm).

Nodes are integers (indexes into the run's fragment list); edges are added
without checks, and cycles are found once, in linear time, by ``order()``.
e3's DAG checks for cycles on every ``add_vertex`` (quadratic: 2,000
vertices took 23 s here), which a 10,000-fragment suite cannot afford.
"""

from __future__ import annotations

import heapq
from collections.abc import Sequence


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
        self.heap: list[tuple[float, int]] = [(-priority[n], n) for n, count in enumerate(self.waiting) if count == 0]
        heapq.heapify(self.heap)

    def __bool__(self) -> bool:
        return bool(self.heap)

    def __len__(self) -> int:
        return len(self.heap)

    def pop(self) -> int:
        return heapq.heappop(self.heap)[1]

    def peek(self) -> int:
        return self.heap[0][1]

    def push(self, node: int) -> None:
        """Put back a node that was popped but could not start yet."""
        heapq.heappush(self.heap, (-self.priority[node], node))

    def restart(self, nodes: Sequence[int]) -> None:
        """Run a group of nodes again (a retried testcase's fragments): each
        waits for its predecessors inside the group again, and those with
        none there are ready. Edges from outside were satisfied already."""
        members = set(nodes)
        for node in nodes:
            self.waiting[node] = 0
        for node in nodes:
            for succ in self.graph.succs[node]:
                if succ in members:
                    self.waiting[succ] += 1
        for node in nodes:
            if not self.waiting[node]:
                self.push(node)

    def done(self, node: int) -> None:
        """Mark ``node`` finished: successors with no other wait become ready."""
        for succ in self.graph.succs[node]:
            self.waiting[succ] -= 1
            if self.waiting[succ] == 0:
                heapq.heappush(self.heap, (-self.priority[succ], succ))


def find_cycles(deps_of: list[list[int]]) -> list[list[int]]:
    """Strongly connected components that form cycles (Tarjan, iterative)."""
    counter = 0
    number = [-1] * len(deps_of)  # -1: not visited yet
    low = [0] * len(deps_of)
    on_stack = [False] * len(deps_of)
    stack: list[int] = []
    cycles = []
    for start in range(len(deps_of)):
        if number[start] >= 0:
            continue
        work = [(start, 0)]
        while work:
            node, child = work.pop()
            if child == 0:
                number[node] = low[node] = counter
                counter += 1
                stack.append(node)
                on_stack[node] = True
            recurse = False
            for i in range(child, len(deps_of[node])):
                succ = deps_of[node][i]
                if number[succ] < 0:
                    work.append((node, i + 1))
                    work.append((succ, 0))
                    recurse = True
                    break
                if on_stack[succ]:
                    low[node] = min(low[node], number[succ])
            if recurse:
                continue
            if low[node] == number[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack[member] = False
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1 or node in deps_of[node]:
                    cycles.append(sorted(component))
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
    return cycles


def cycle_path(deps_of: list[list[int]], component: list[int]) -> list[int]:
    """A real loop through ``component``, from its first node back to it."""
    members = set(component)
    start = component[0]
    came_from = {start: -1}  # -1: where the search began
    queue = [start]
    for node in queue:
        for succ in deps_of[node]:
            if succ == start:
                path = [node]
                while came_from[path[-1]] >= 0:
                    path.append(came_from[path[-1]])
                return path[::-1]
            if succ in members and succ not in came_from:
                came_from[succ] = node
                queue.append(succ)
    return component  # pragma: no cover - a component always loops
