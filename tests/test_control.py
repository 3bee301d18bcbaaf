"""Control conditions: what they accept, what they refuse, and that nothing
in them can run code."""

from __future__ import annotations

import ast
import os
import platform
import sys
import uuid

import pytest

from run_testsuite import conditions, control
from run_testsuite.conditions import ExpressionError, Namespace, compile_condition
from run_testsuite.control import Decision, condition_names, decide, host_facts

FACTS = {"os": "linux", "arch": "x86_64", "platform": "x86_64-linux", "cpus": 8,
         "python": (3, 11, 7), "hostname": "build-1"}


def names(**extra):
    """A fixed, host-independent set of names."""
    result = dict(FACTS)
    result["env"] = Namespace("env", {"CI": "true", "HOME": "/home/u", "EMPTY": ""}, missing_ok=True)
    params = {"opt": "O2", "fast": True, "level": 3}
    result.update(params)
    result["params"] = Namespace("params", params, missing_ok=False)
    result["tags"] = ("slow", "gpu")
    result["compiler"] = "clang"
    result.update(extra)
    return result


def holds(text: str, **extra) -> bool:
    return compile_condition(text).evaluate(names(**extra))


# -- allowed constructs ------------------------------------------------------------
@pytest.mark.parametrize(
    "text, expected",
    [
        # literals
        ("True", True), ("False", False), ("None", False), ("1", True), ("0", False),
        ("0.0", False), ("'x'", True), ("''", False), ("()", False), ("[1]", True),
        ("-1 < 0", True), ("+2 == 2", True), ("-1.5 < -1", True),
        # names and comparisons
        ("os == 'linux'", True), ("os != 'linux'", False), ('os == "windows"', False),
        ("cpus > 4", True), ("cpus >= 8", True), ("cpus < 8", False), ("cpus <= 8", True),
        ("1 < cpus <= 8", True), ("1 < cpus < 8", False), ("0 < 1 > cpus", False),
        ("os in ('linux', 'darwin')", True), ("os in ['windows']", False),
        ("os not in ('windows',)", True), ("'lin' in os", True),
        ("python >= (3, 11)", True), ("python >= (3, 12)", False),
        ("python >= [3, 11, 7]", True), ("python < (4,)", True),
        ("(3, 11) < python", True), ("((1, 2), 3) == ((1, 2), 3)", True),
        ("hostname == 'build-1'", True), ("platform == 'x86_64-linux'", True),
        # boolean logic and precedence (not > and > or, as in Python)
        ("os == 'linux' and cpus > 4", True), ("os == 'linux' and cpus > 99", False),
        ("os == 'windows' or arch == 'x86_64'", True), ("not os == 'windows'", True),
        ("not True or True", True), ("not (True or True)", False),
        ("True or False and False", True), ("(True or False) and False", False),
        ("not not 1", True), ("False or None or 0", False),
        # tags
        ("'slow' in tags", True), ("'fast' in tags", False), ("'gpu' not in tags", False),
        ("tags", True),
        # env: attribute, subscript, membership, unset is None
        ("env.CI == 'true'", True), ("env['CI'] == 'true'", True), ('env["HOME"] == "/home/u"', True),
        ("env.NOT_SET", False), ("env.NOT_SET == None", True), ("not env.NOT_SET", True),
        ("env['NOT_SET'] == None", True), ("'CI' in env", True), ("'NOT_SET' in env", False),
        ("'NOT_SET' not in env", True), ("env.EMPTY", False), ("'EMPTY' in env", True),
        ("env.CI and not env.NOT_SET", True),
        # params: namespace and bare names; matrix values by key
        ("params.opt == 'O2'", True), ("params['opt'] == 'O2'", True), ("opt == 'O2'", True),
        ("'opt' in params", True), ("'nope' in params", False), ("fast", True),
        ("params.fast and level >= 3", True), ("compiler == 'clang'", True),
        # multi-line (YAML block scalar) and surrounding whitespace
        ("os == 'linux' and\n  cpus > 4\n", True), ("  os == 'linux'  ", True),
    ],
)
def test_allowed_constructs_evaluate_like_python(text, expected):
    assert holds(text) is expected


def test_evaluate_returns_a_bool():
    assert compile_condition("env.CI").evaluate(names()) is True
    assert compile_condition("env.NOT_SET").evaluate(names()) is False


def test_and_or_short_circuit():
    # the right-hand side would be a type error if it were evaluated
    assert holds("os == 'windows' and cpus > 'x'") is False
    assert holds("os == 'linux' or cpus > 'x'") is True
    with pytest.raises(ExpressionError):
        holds("os == 'linux' and cpus > 'x'")


def test_names_lists_the_top_level_names_used():
    condition = compile_condition("os == 'linux' and env.CI and params['opt'] and 'x' in tags or cpus")
    assert condition.names == {"os", "env", "params", "tags", "cpus"}
    assert compile_condition("'a' in ('a', 'b')").names == frozenset()


def test_check_names_validates_without_evaluating():
    condition = compile_condition("os == 'linux' and compilr == 'gcc'")
    condition.check_names(["os", "compilr"])  # all known: no error
    with pytest.raises(ExpressionError) as error:
        condition.check_names(["os", "compiler", "cpus"])
    assert "unknown name 'compilr'" in str(error.value)
    assert "did you mean 'compiler'?" in str(error.value)


def test_conditions_are_cached_by_text():
    assert compile_condition("os == 'linux'") is compile_condition("os == 'linux'")


# -- unknown names -----------------------------------------------------------------
def test_unknown_name_is_named_with_a_suggestion_and_the_known_names():
    with pytest.raises(ExpressionError) as error:
        holds("oss == 'linux'")
    message = str(error.value)
    assert "unknown name 'oss'" in message
    assert "did you mean 'os'?" in message
    assert "known: arch, compiler, cpus, env," in message
    assert message.endswith(": oss == 'linux'")
    assert "\n" not in message


def test_every_unknown_name_is_reported_even_behind_a_short_circuit():
    with pytest.raises(ExpressionError) as error:
        holds("os == 'linux' or (tagz and cpu > 1)")
    message = str(error.value)
    assert "unknown name 'cpu'" in message and "did you mean 'cpus'?" in message
    assert "unknown name 'tagz'" in message and "did you mean 'tags'?" in message


def test_unknown_name_without_a_close_match_has_no_suggestion():
    with pytest.raises(ExpressionError) as error:
        holds("zzzzzz")
    assert "did you mean" not in str(error.value)


def test_unknown_parameter_is_an_error_but_unset_env_is_none():
    with pytest.raises(ExpressionError) as error:
        holds("params.otp == 'O2'")
    assert "unknown parameter 'otp'" in str(error.value)
    assert "did you mean 'opt'?" in str(error.value)
    assert holds("env.OTP == None")


# -- refused at compile time -------------------------------------------------------
@pytest.mark.parametrize(
    "text, problem",
    [
        ("__import__('os').system('id')", "function calls are not allowed in conditions"),
        ("open('/etc/passwd')", "function calls are not allowed"),
        ("exec('1')", "function calls are not allowed"),
        ("eval('1')", "function calls are not allowed"),
        ("globals()", "function calls are not allowed"),
        ("().__class__.__bases__[0].__subclasses__()", "function calls are not allowed"),
        ("().__class__", "attribute and subscript access is only allowed on env and params"),
        ("''.join", "attribute and subscript access is only allowed on env and params"),
        ("os.path", "not on 'os'"),
        ("tags[0]", "subscripts must be a quoted name"),
        ("python['x']", "not on 'python'"),
        ("env.HOME.upper", "attribute and subscript access is only allowed on env and params"),
        ("env['HOME']['x']", "attribute and subscript access is only allowed on env and params"),
        ("env[0]", "subscripts must be a quoted name"),
        ("env[os]", "subscripts must be a quoted name"),
        ("env['a':'b']", "subscripts must be a quoted name"),
        ("env.__class__", "names starting with '__' are not allowed"),
        ("env['__class__']", "names starting with '__' are not allowed"),
        ("params.__dict__", "names starting with '__' are not allowed"),
        ("__builtins__", "names starting with '__' are not allowed"),
        ("__import__", "names starting with '__' are not allowed"),
        ("[x for x in ()]", "comprehensions are not allowed"),
        ("(x for x in ())", "comprehensions are not allowed"),
        ("{x for x in ()}", "comprehensions are not allowed"),
        ("{x: 1 for x in ()}", "comprehensions are not allowed"),
        ("lambda: 1", "lambda expressions are not allowed"),
        ("f'{os}'", "f-strings are not allowed"),
        ("f'plain'", "f-strings are not allowed"),
        ("os if cpus else arch", "conditional expressions (x if c else y) are not allowed"),
        ("(x := 1)", "assignment expressions (:=) are not allowed"),
        ("cpus + 1 > 2", "arithmetic and bitwise operators are not allowed"),
        ("cpus * 2", "arithmetic and bitwise operators are not allowed"),
        ("'a' * 100000000", "arithmetic and bitwise operators are not allowed"),
        ("2 ** 99999999", "arithmetic and bitwise operators are not allowed"),
        ("-cpus < 0", "arithmetic and bitwise operators are not allowed"),
        ("~1", "arithmetic and bitwise operators are not allowed"),
        ("-True", "arithmetic and bitwise operators are not allowed"),
        ("os is None", "'is' is not allowed in conditions; use == or !="),
        ("os is not None", "'is not' is not allowed"),
        ("{'a': 1}", "dict displays are not allowed"),
        ("{1, 2}", "set displays are not allowed"),
        ("b'x' == b'x'", "bytes literals are not allowed"),
        ("...", "ellipsis literals are not allowed"),
        ("1j", "complex literals are not allowed"),
        ("os in (arch, 'x')", "tuples and lists may hold only literals"),
        ("(1, open('x'))", "function calls are not allowed"),
        ("[*tags]", "starred expressions are not allowed"),
        ("await x", "await are not allowed"),
    ],
)
def test_hostile_or_unsupported_expressions_are_refused_at_compile_time(text, problem):
    with pytest.raises(ExpressionError) as error:
        compile_condition(text)
    message = str(error.value)
    assert problem in message
    assert message.endswith(": " + text)  # names the expression
    assert "\n" not in message


def test_refused_expressions_are_located():
    with pytest.raises(ExpressionError) as error:
        compile_condition("os == 'linux' and open('x')")
    assert error.value.column == 19
    assert error.value.expression == "os == 'linux' and open('x')"


def test_shell_injection_through_import_cannot_run():
    marker = f"/tmp/pwned-{uuid.uuid4().hex}"
    text = f"__import__('os').system('touch {marker}')"
    with pytest.raises(ExpressionError) as error:
        compile_condition(text).evaluate(names())
    assert "function calls are not allowed" in str(error.value)
    assert not os.path.exists(marker)


@pytest.mark.parametrize(
    "text",
    [
        "__import__('os').system('touch /tmp/pwned-XYZ')",
        "().__class__.__bases__[0].__subclasses__()",
        "env.__class__",
        "open('/etc/passwd')",
        "exec('1')",
        "globals()",
    ],
)
def test_hostile_expressions_refuse_even_with_everything_in_scope(text):
    # Even a scope holding builtins does not help: names only look things up.
    scope = names(**{"open": open, "exec": exec, "globals": globals})
    with pytest.raises(ExpressionError):
        compile_condition(text).evaluate(scope)
    assert not os.path.exists("/tmp/pwned-XYZ")


def test_the_compiler_knows_only_the_whitelisted_node_types():
    # There is no separate whitelist for the interpreter to disagree with:
    # a node type without a method here cannot be compiled at all.
    handled = {name[1:] for name in vars(conditions._Compiler) if name[1:2].isupper()}
    assert handled == {"Constant", "Tuple", "List", "Name", "Attribute", "Subscript",
                       "BoolOp", "UnaryOp", "Compare"}
    compiler = conditions._Compiler("x", set())
    call = ast.parse("f()", mode="eval").body
    with pytest.raises(ExpressionError):
        compiler.build(call)
    with pytest.raises(ExpressionError):
        compiler.build(ast.parse("x", mode="exec"))  # not even a whole module


def test_the_module_never_uses_eval_exec_or_compile():
    source = open(conditions.__file__).read()
    tree = ast.parse(source)
    called = {node.func.id for node in ast.walk(tree)
              if isinstance(node, ast.Call) and isinstance(node.func, ast.Name)}
    assert not called & {"eval", "exec", "compile", "__import__"}


# -- limits ------------------------------------------------------------------------
NESTED_10000 = [
    "(" * 10_000 + "1" + ")" * 10_000,
    "not " * 10_000 + "x",
    "[" * 10_000 + "]" * 10_000,
    "-" * 10_000 + "1",
    "x" + ".a" * 10_000,
    "env" + "['a']" * 10_000,
    "a and (" * 10_000 + "a" + ")" * 10_000,
]


@pytest.mark.parametrize("text", NESTED_10000, ids=range(len(NESTED_10000)))
def test_ten_thousand_levels_are_an_expression_error(text):
    with pytest.raises(ExpressionError):
        compile_condition(text)


@pytest.mark.parametrize("text", NESTED_10000, ids=range(len(NESTED_10000)))
def test_ten_thousand_levels_are_an_expression_error_past_the_length_limit(text, monkeypatch):
    # Without the length limit, the parser's and our depth limits still hold:
    # no RecursionError or MemoryError escapes.
    monkeypatch.setattr(conditions, "MAX_LENGTH", 10**6)
    with pytest.raises(ExpressionError) as error:
        compile_condition(text)
    assert "nested" in str(error.value) or "syntax error" in str(error.value)


def test_depth_limit_refuses_what_the_parser_accepts():
    text = "not " * 200 + "x"  # 804 characters: short enough, too deep
    ast.parse(text, mode="eval")
    with pytest.raises(ExpressionError) as error:
        compile_condition(text)
    assert f"nested more than {conditions.MAX_DEPTH} levels deep" in str(error.value)
    assert holds("not " * 11 + "os") is False


def test_length_limit():
    text = "os == '" + "x" * conditions.MAX_LENGTH + "'"
    with pytest.raises(ExpressionError) as error:
        compile_condition(text)
    assert f"longer than {conditions.MAX_LENGTH} characters" in str(error.value)
    assert len(str(error.value)) < 300  # the expression is abridged


def test_empty_and_non_string_conditions():
    for text in ("", "   ", "\n"):
        with pytest.raises(ExpressionError, match="empty condition"):
            compile_condition(text)
    with pytest.raises(ExpressionError, match="must be a string, not list"):
        compile_condition(["os"])


# -- syntax and evaluation errors --------------------------------------------------
@pytest.mark.parametrize(
    "text, column",
    [
        ("os == = 'x'", 7),
        ("os ==", 6),
        ("os == 'linux", 7),
        ("os = 'linux'", 4),
        ("(os == 'x'", 1),
        ("os == 'linux' and and cpus", 19),
        ("cpus > 4)", 9),
    ],
)
def test_syntax_errors_give_the_column(text, column):
    with pytest.raises(ExpressionError) as error:
        compile_condition(text)
    assert error.value.column == column
    assert str(error.value).startswith(f"syntax error at column {column}: ")
    assert str(error.value).endswith(": " + text)


def test_syntax_error_column_counts_from_the_stripped_text():
    with pytest.raises(ExpressionError) as error:
        compile_condition("   os == = 'x'")
    assert error.value.column == 7


def test_null_byte_is_an_expression_error():
    with pytest.raises(ExpressionError):
        compile_condition("os == '\0'")


@pytest.mark.parametrize("text", ["cpus > '4'", "env.NOT_SET < 3", "1 in cpus", "tags < 3"])
def test_type_errors_at_evaluation_are_expression_errors(text):
    with pytest.raises(ExpressionError) as error:
        holds(text)
    assert str(error.value).startswith("cannot apply ")
    assert str(error.value).endswith(": " + text)


def test_namespace_access_on_a_value_that_is_not_a_mapping():
    with pytest.raises(ExpressionError, match="'env' is not a namespace"):
        holds("env.HOME", env="not a mapping")


def test_plain_mappings_work_as_namespaces():
    assert compile_condition("env.A == '1' and env.B == None").evaluate({"env": {"A": "1"}})


def test_expression_error_pickles():
    import pickle

    error = ExpressionError("problem", "os == 1", 3)
    assert str(pickle.loads(pickle.dumps(error))) == str(error)


# -- host facts and names ----------------------------------------------------------
def test_host_facts_have_the_documented_keys_and_sane_types():
    facts = host_facts()
    assert set(facts) == {"os", "arch", "platform", "cpus", "python", "hostname"}
    assert facts["os"] == platform.system().lower()
    assert isinstance(facts["arch"], str) and facts["arch"]
    assert isinstance(facts["platform"], str) and facts["arch"] in facts["platform"]
    assert facts["os"] in facts["platform"]
    assert isinstance(facts["cpus"], int) and facts["cpus"] >= 1
    assert facts["python"] == tuple(sys.version_info[:3])
    assert isinstance(facts["hostname"], str) and facts["hostname"]
    assert "." not in facts["hostname"]
    if sys.platform.startswith("linux") and platform.machine() == "x86_64":
        assert (facts["os"], facts["arch"], facts["platform"]) == ("linux", "x86_64", "x86_64-linux")


def test_host_facts_are_cached_and_returned_as_copies():
    first = host_facts()
    first["os"] = "changed"
    assert host_facts()["os"] != "changed"
    assert control._host_facts.cache_info().hits >= 1


def test_host_facts_in_conditions():
    scope = condition_names()
    assert compile_condition("python >= (3, 11) and cpus >= 1").evaluate(scope)
    assert compile_condition(f"os == {host_facts()['os']!r}").evaluate(scope)


def test_condition_names_documented_set():
    scope = condition_names(["slow"], {"CI": "1"}, {"opt": "O2"}, {"compiler": "gcc"})
    assert set(scope) == {"os", "arch", "platform", "cpus", "python", "hostname",
                          "env", "params", "tags", "which", "exists", "opt", "compiler"}
    assert scope["tags"] == ("slow",)
    assert isinstance(scope["env"], Namespace) and isinstance(scope["params"], Namespace)
    for text in ["'slow' in tags", "env.CI == '1'", "not env.HOME", "'CI' in env",
                 "opt == 'O2' and params.opt == 'O2'", "compiler == 'gcc'"]:
        assert compile_condition(text).evaluate(scope), text


def test_exists_checks_absolute_paths_only(tmp_path):
    (tmp_path / "header.h").write_text("")
    scope = condition_names((), {}, {}, {})
    header = str(tmp_path / "header.h")
    assert compile_condition(f"exists[{header!r}] and {header!r} in exists").evaluate(scope)
    assert scope["exists"][header] == header
    assert compile_condition(f"not exists[{str(tmp_path / 'missing.h')!r}]").evaluate(scope)
    # Relative to what? Never found, so a suite means the same from any directory.
    assert compile_condition("not exists['header.h'] and 'header.h' not in exists").evaluate(scope)


def test_which_finds_programs_on_the_conditions_path(tmp_path):
    tool = tmp_path / "g++"
    tool.write_text("#!/bin/sh\n")
    tool.chmod(0o755)
    (tmp_path / "not-executable").write_text("")
    scope = condition_names((), {"PATH": str(tmp_path)}, {}, {})
    assert compile_condition("which['g++']").evaluate(scope)
    assert compile_condition("'g++' in which and 'gcc' not in which").evaluate(scope)
    assert compile_condition("not which.nosuchprogram and not which['not-executable']").evaluate(scope)
    assert scope["which"]["g++"] == str(tool)
    # The path of a program, not a path: which['/bin/sh'] is None.
    assert compile_condition("not which['/bin/sh']").evaluate(scope)
    skip = decide([{"skip": "not which.bwrap", "reason": "no bubblewrap"}], scope)
    assert skip == Decision("skip", "no bubblewrap", "not which.bwrap")


def test_condition_names_env_defaults_to_the_process_environment(monkeypatch):
    monkeypatch.setenv("RUN_TESTSUITE_CONTROL_TEST", "yes")
    assert compile_condition("env.RUN_TESTSUITE_CONTROL_TEST == 'yes'").evaluate(condition_names())


def test_env_namespace_is_a_read_only_snapshot():
    environ = {"A": "1"}
    scope = condition_names((), environ, {}, {})
    environ["A"] = "2"
    assert scope["env"]["A"] == "1"
    with pytest.raises(TypeError):
        scope["env"]["A"] = "3"


def test_the_more_specific_name_wins_but_namespaces_are_reserved():
    scope = condition_names(["t"], {}, {"arch": "from-param", "level": 1},
                            {"arch": "from-matrix", "env": "x", "tags": "y"})
    assert scope["arch"] == "from-matrix"
    assert condition_names((), {}, {"arch": "from-param"}, {})["arch"] == "from-param"
    assert isinstance(scope["env"], Namespace) and scope["tags"] == ("t",)
    assert compile_condition("params.arch == 'from-param' and level == 1").evaluate(scope)


def test_module_docstring_documents_every_name():
    doc = control.__doc__
    for name in ("os", "arch", "platform", "cpus", "python", "hostname", "env", "params", "tags"):
        assert f"| `{name}` |" in doc
    assert "| *matrix key* |" in doc and "| *parameter* |" in doc


# -- decide ------------------------------------------------------------------------
def test_decide_first_matching_entry_wins():
    control_entries = [
        {"skip": "os == 'windows'", "reason": "no fork"},
        {"xfail": "arch == 'x86_64'", "reason": "bug 12"},
        {"skip": "True", "reason": "never reached"},
    ]
    assert decide(control_entries, names()) == Decision("xfail", "bug 12", "arch == 'x86_64'")


def test_decide_skip_before_xfail_when_skip_comes_first():
    entries = [{"skip": "'slow' in tags", "reason": "slow"}, {"xfail": "True", "reason": "x"}]
    assert decide(entries, names()) == Decision("skip", "slow", "'slow' in tags")
    assert decide(list(reversed(entries)), names()).action == "xfail"


def test_decide_nothing_holds():
    assert decide([{"skip": "os == 'windows'"}, {"xfail": "cpus > 64"}], names()) == Decision(None, "", "")
    assert decide([], names()).action is None


def test_decide_reason_defaults_to_the_expression():
    assert decide([{"skip": "env.CI"}], names()) == Decision("skip", "env.CI", "env.CI")


def test_decide_propagates_expression_errors():
    with pytest.raises(ExpressionError, match="unknown name 'oss'"):
        decide([{"skip": "os == 'windows'"}, {"xfail": "oss == 'linux'"}], names())
    with pytest.raises(ExpressionError, match="function calls"):
        decide([{"skip": "open('x')"}], names())


def test_decide_refuses_an_entry_without_exactly_one_action():
    for entry in ({"reason": "x"}, {"skip": "True", "xfail": "True"}):
        with pytest.raises(ExpressionError, match="exactly one of 'skip' or 'xfail'"):
            decide([entry], names())


def test_comparisons_with_values_a_host_fact_never_takes_are_found():
    problems = control.never_true("os == 'Linux' or arch in ('amd64', 'x86_64') or 'windows' != os")
    assert len(problems) == 2, problems
    assert problems[0].startswith("os is never 'Linux' (it is one of ") and "did you mean 'linux'?" in problems[0]
    assert problems[1].startswith("arch is never 'amd64'") and "did you mean 'x86_64'?" in problems[1]
    assert control.never_true("os == 'linux' and arch == 'x86_64' and cpus > 2") == []
    # A matrix key or parameter called os is not the host's: not checked.
    assert control.never_true("os == 'Linux'", shadowed=["os"]) == []
    # A substring test of the name's value compares no whole value.
    assert control.never_true("'64' in arch or 'lin' not in os") == []
    # What does not parse compares nothing here (compiling it says why).
    assert control.never_true("os == ") == []
