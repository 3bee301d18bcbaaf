"""Unit tests: suite/dag.py, loader.find_cycles / cycle_path, spec error positions."""

from __future__ import annotations

import random

import pytest

from run_testsuite import spec as specs
from run_testsuite.dag import Graph, ReadyQueue
from run_testsuite.dag import cycle_path, find_cycles


def graph(size: int, edges) -> Graph:
    g = Graph(size)
    for before, after in edges:
        g.add_edge(before, after)
    return g


def assert_topological(g: Graph, order: list[int]) -> None:
    position = {node: i for i, node in enumerate(order)}
    for node in order:
        for succ in g.succs[node]:
            assert position[node] < position[succ], f"edge {node}->{succ} violated"


# -- Graph -----------------------------------------------------------------------
def test_order_of_a_dag_is_topological_and_complete():
    g = graph(6, [(5, 2), (5, 0), (4, 0), (4, 1), (2, 3), (3, 1)])
    order, stuck = g.order()
    assert stuck == []
    assert sorted(order) == [0, 1, 2, 3, 4, 5]
    assert_topological(g, order)
    # Kahn's order from the roots 4 and 5, in the order edges were added.
    assert order == [4, 5, 2, 0, 3, 1]


def test_order_leaves_out_nodes_on_and_behind_a_cycle():
    # 0 -> 1 -> 2 -> 1 (cycle 1<->2), 2 -> 3 (behind the cycle), 4 -> 5 (fine)
    g = graph(6, [(0, 1), (1, 2), (2, 1), (2, 3), (4, 5)])
    order, stuck = g.order()
    assert order == [0, 4, 5]
    assert stuck == [1, 2, 3]


def test_order_self_loop_is_stuck():
    g = graph(3, [(0, 1), (1, 1), (1, 2)])
    order, stuck = g.order()
    assert order == [0]
    assert stuck == [1, 2]


def test_add_node_grows_the_graph():
    g = Graph()
    assert len(g) == 0
    a, b = g.add_node(), g.add_node()
    assert (a, b) == (0, 1)
    g.add_edge(a, b)
    assert len(g) == 2
    assert g.npreds == [0, 1]
    assert g.order() == ([0, 1], [])


def test_longest_paths_on_a_diamond_with_weights():
    #     0
    #    / \
    #   1   2
    #    \ /
    #     3 -> 4
    g = graph(5, [(0, 1), (0, 2), (1, 3), (2, 3), (3, 4)])
    weights = [1.0, 5.0, 2.0, 1.0, 3.0]
    assert g.longest_paths(weights) == [10.0, 9.0, 6.0, 4.0, 3.0]


def test_longest_paths_unit_weights_count_the_chain_behind():
    g = graph(5, [(0, 1), (1, 2), (3, 2)])
    assert g.longest_paths([1.0] * 5) == [3.0, 2.0, 1.0, 2.0, 1.0]


def test_longest_paths_keeps_own_weight_for_stuck_nodes():
    # 0 <-> 1 is a cycle; 2 -> 0 leads into it. Stuck nodes keep their own
    # weight; 2 adds the weight of what it leads to.
    g = graph(3, [(0, 1), (1, 0), (2, 0)])
    assert g.longest_paths([1.0, 2.0, 4.0]) == [1.0, 2.0, 5.0]


def _reference_longest(g: Graph, weights):
    memo = {}

    def longest(node):
        if node not in memo:
            memo[node] = weights[node] + max((longest(s) for s in g.succs[node]), default=0.0)
        return memo[node]

    return [longest(n) for n in range(len(g))]


@pytest.mark.parametrize("seed", range(5))
def test_order_and_longest_paths_match_a_reference_on_random_dags(seed):
    rng = random.Random(seed)
    size = 40
    edges = {(a, b) for a in range(size) for b in range(a + 1, size) if rng.random() < 0.1}
    perm = list(range(size))
    rng.shuffle(perm)  # hide the natural order
    g = graph(size, [(perm[a], perm[b]) for a, b in sorted(edges)])
    order, stuck = g.order()
    assert stuck == []
    assert sorted(order) == list(range(size))
    assert_topological(g, order)
    weights = [float(rng.randint(1, 9)) for _ in range(size)]
    assert g.longest_paths(weights) == _reference_longest(g, weights)


# -- ReadyQueue ------------------------------------------------------------------
def test_ready_queue_pops_highest_priority_first_ties_by_node():
    g = Graph(5)
    queue = ReadyQueue(g, [1.0, 3.0, 2.0, 3.0, 0.5])
    popped = []
    while queue:
        popped.append(queue.pop())
    assert popped == [1, 3, 2, 0, 4]


def test_ready_queue_releases_successors_only_when_all_predecessors_done():
    # 0 -> 2, 1 -> 2, 2 -> 3
    g = graph(4, [(0, 2), (1, 2), (2, 3)])
    queue = ReadyQueue(g, g.longest_paths([1.0] * 4))
    first = queue.pop()
    second = queue.pop()
    assert {first, second} == {0, 1}
    assert not queue
    queue.done(first)
    assert not queue  # 2 still waits for the other one
    queue.done(second)
    assert queue.pop() == 2
    assert not queue
    queue.done(2)
    assert queue.pop() == 3
    assert not queue


def test_ready_queue_prefers_the_critical_path():
    # A long chain 0->1->2->3 and independent nodes 4, 5: the chain's head
    # has the most behind it, so it starts first.
    g = graph(6, [(0, 1), (1, 2), (2, 3)])
    queue = ReadyQueue(g, g.longest_paths([1.0] * 6))
    assert queue.pop() == 0
    assert queue.pop() == 4
    assert queue.pop() == 5


def test_ready_queue_never_releases_cycle_members():
    g = graph(3, [(0, 1), (1, 2), (2, 1)])
    queue = ReadyQueue(g, g.longest_paths([1.0] * 3))
    assert queue.pop() == 0
    queue.done(0)
    assert not queue


# -- large graphs (no timing assertions) -------------------------------------------
def test_ten_thousand_node_chain_orders_correctly():
    n = 10_000
    g = graph(n, [(i, i + 1) for i in range(n - 1)])
    order, stuck = g.order()
    assert order == list(range(n))
    assert stuck == []
    longest = g.longest_paths([1.0] * n)
    assert longest[0] == float(n)
    assert longest[-1] == 1.0
    queue = ReadyQueue(g, longest)
    walked = []
    while queue:
        node = queue.pop()
        walked.append(node)
        queue.done(node)
    assert walked == list(range(n))


def test_ten_thousand_node_fan_out_and_in_orders_correctly():
    # 0 -> 1..9998 -> 9999
    n = 10_000
    edges = [(0, i) for i in range(1, n - 1)] + [(i, n - 1) for i in range(1, n - 1)]
    g = graph(n, edges)
    order, stuck = g.order()
    assert stuck == []
    assert order[0] == 0 and order[-1] == n - 1
    assert sorted(order) == list(range(n))
    assert g.longest_paths([1.0] * n)[0] == 3.0
    queue = ReadyQueue(g, g.longest_paths([1.0] * n))
    walked = []
    while queue:
        node = queue.pop()
        walked.append(node)
        queue.done(node)
    assert walked == list(range(n))  # ties broken by node number


def test_ten_thousand_node_cycle_is_found_without_recursion():
    n = 10_000
    deps = [[(i + 1) % n] for i in range(n)]
    cycles = find_cycles(deps)
    assert cycles == [list(range(n))]
    path = cycle_path(deps, cycles[0])
    assert path == list(range(n))
    order, stuck = graph(n, [(i, (i + 1) % n) for i in range(n)]).order()
    assert order == [] and len(stuck) == n


# -- find_cycles / cycle_path -------------------------------------------------------
def test_find_cycles_none_in_a_dag():
    assert find_cycles([[1, 2], [2], [], []]) == []
    assert find_cycles([]) == []


def test_find_cycles_two_cycle_three_cycle_and_self_loop():
    deps = [
        [1],  # 0 -> 1 -> 0
        [0],
        [3],  # 2 -> 3 -> 4 -> 2
        [4],
        [2],
        [5],  # 5 -> 5
        [0, 2],  # 6 depends on cycles but is not in one
    ]
    assert sorted(find_cycles(deps)) == [[0, 1], [2, 3, 4], [5]]


def test_cycle_path_follows_real_edges():
    deps = [[1], [2], [0]]
    assert cycle_path(deps, [0, 1, 2]) == [0, 1, 2]
    # Edges the other way round: 0 -> 2 -> 1 -> 0.
    deps = [[2], [0], [1]]
    assert cycle_path(deps, [0, 1, 2]) == [0, 2, 1]
    assert cycle_path([[0]], [0]) == [0]


def _reference_sccs(deps):
    n = len(deps)
    reach = [set(d) for d in deps]
    changed = True
    while changed:
        changed = False
        for a in range(n):
            extra = set().union(*(reach[b] for b in reach[a])) - reach[a] if reach[a] else set()
            if extra:
                reach[a] |= extra
                changed = True
    cycles = set()
    for a in range(n):
        if a in reach[a]:
            cycles.add(tuple(sorted(b for b in range(n) if b in reach[a] and a in reach[b])))
    return sorted(list(c) for c in cycles)


@pytest.mark.parametrize("seed", range(20))
def test_find_cycles_matches_a_reference_on_random_graphs(seed):
    rng = random.Random(seed)
    n = rng.randint(2, 25)
    deps = [sorted(rng.sample(range(n), rng.randint(0, 3))) for _ in range(n)]
    found = sorted(find_cycles(deps))
    assert found == _reference_sccs(deps)
    for component in found:
        path = cycle_path(deps, component)
        assert path[0] == component[0]
        assert set(path) <= set(component)
        for a, b in zip(path, path[1:] + path[:1]):
            assert b in deps[a], f"{a}->{b} is not an edge"


# -- spec positions ------------------------------------------------------------------
def _problems(tmp_path, text: str, schema: str = "testcase"):
    path = tmp_path / "test.yaml"
    path.write_text(text)
    with pytest.raises(specs.SpecError) as caught:
        specs.load_and_validate(str(path), schema)
    assert caught.value.path == str(path)
    return caught.value.problems, str(path)


def test_locate_wrong_type_at_its_value(tmp_path):
    problems, _ = _problems(tmp_path, "cmd: echo hi\ntimeout: abc\n")
    assert problems == [(2, 10, "expected a number, got 'abc' (at timeout)")]


def test_locate_unknown_key_with_suggestion(tmp_path):
    problems, _ = _problems(tmp_path, "description: x\ncmdd: echo hi\n")
    assert problems == [(2, 1, "unknown key 'cmdd'; did you mean 'cmd'?")]


def test_locate_unknown_key_without_close_match(tmp_path):
    problems, _ = _problems(tmp_path, "cmd: echo hi\nzzzzzz: 1\n")
    assert problems == [(2, 1, "unknown key 'zzzzzz'")]


def test_locate_nested_step_errors_sorted_by_place(tmp_path):
    text = (
        "steps:\n"
        "  - cmd: echo ok\n"
        "  - cmd: 5\n"
        "    timout: 3\n"
        "exit_code: 300\n"
    )
    problems, _ = _problems(tmp_path, text)
    assert problems == [
        (3, 10, "expected a string or a list, got 5 (at steps[1].cmd)"),
        (4, 5, "unknown key 'timout'; did you mean 'timeout'? (at steps[1])"),
        (5, 12, "must be at most 255, got 300 (at exit_code)"),
    ]


def test_locate_cmd_and_steps_together_at_the_top(tmp_path):
    problems, _ = _problems(tmp_path, "cmd: echo hi\nsteps:\n  - cmd: echo x\n")
    assert problems == [(1, 1, "'cmd' and 'steps' exclude each other.")]


def test_locate_yaml_syntax_error(tmp_path):
    problems, path = _problems(tmp_path, "cmd: echo hi\nenv: [a\n")
    assert len(problems) == 1
    line, col, text = problems[0]
    assert (line, col) == (3, 1)
    assert text.startswith("YAML syntax error: ")
    rendered = specs.SpecError(path, problems).render()
    assert rendered.startswith(f"{path}:3:1: YAML syntax error")


def test_locate_top_level_not_a_mapping(tmp_path):
    problems, _ = _problems(tmp_path, "- a\n- b\n")
    assert problems == [(1, 1, "expected a mapping of keys to values at the top level, found list")]


def test_locate_suite_defaults_unknown_key(tmp_path):
    problems, _ = _problems(tmp_path, "defaults:\n  timout: 5\n", schema="suite")
    assert problems == [(2, 3, "unknown key 'timout'; did you mean 'timeout'? (at defaults)")]


def test_empty_spec_is_an_empty_mapping(tmp_path):
    path = tmp_path / "test.yaml"
    path.write_text("")
    assert specs.load_and_validate(str(path), "testcase") == {}


def test_key_position_of_present_and_missing_keys(tmp_path):
    path = tmp_path / "test.yaml"
    path.write_text("cmd: echo\noptions:\n  expect:\n    - a\n    - b\n")
    assert specs.key_position(str(path), ["options", "expect", 1]) == (5, 7)
    assert specs.key_position(str(path), ["cmd"]) == (1, 6)
    assert specs.key_position(str(path), ["baseline"]) == (1, 1)  # absent: the top
