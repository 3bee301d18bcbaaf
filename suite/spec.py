"""Read a YAML spec, validate it against its JSON Schema, and say precisely
where it is wrong.

The fast path loads with PyYAML's C safe loader and validates with one
compiled validator per schema. Only when something is wrong do we pay for a
second parse that keeps node positions, so that the error names the line and
column of the offending value.
"""

from __future__ import annotations

import os
import re
import stat

from run_testsuite import schemas

TYPE_CHECKING = False  # not typing's: importing typing costs every run a few ms
if TYPE_CHECKING:  # pragma: no cover
    from typing import Any

# PyYAML is imported when a spec has to be parsed: a re-run whose specs all
# come from the spec cache (suite.spec_cache) never needs it.
_loader_class = None


def _loader():
    """The safe loader (libyaml's C one where built), refusing duplicate
    keys instead of keeping the last; made on first use."""
    global _loader_class
    if _loader_class is None:
        import yaml

        try:  # The C loader is several times faster; fall back where libyaml is absent.
            from yaml import CSafeLoader as base
        except ImportError:  # pragma: no cover - depends on the PyYAML build
            from yaml import SafeLoader as base  # type: ignore[assignment]

        class _Loader(base):
            def construct_mapping(self, node, deep=False):
                seen: dict = {}
                for key_node, _ in node.value:
                    key = self.construct_object(key_node, deep=True)
                    try:
                        first = seen.setdefault(key, key_node)
                    except TypeError:
                        continue  # an unhashable key: the base class reports it
                    if first is not key_node:
                        raise yaml.constructor.ConstructorError(
                            "while constructing a mapping",
                            node.start_mark,
                            f"duplicate key {key!r} (first at line {first.start_mark.line + 1})",
                            key_node.start_mark,
                        )
                return super().construct_mapping(node, deep)

        # (The stubs type add_constructor for the pure-Python loaders only.)
        _Loader.add_constructor("tag:yaml.org,2002:map", _Loader.construct_yaml_map)  # type: ignore[type-var]
        _loader_class = _Loader
    return _loader_class


# A spec that expands to more values than this (counting every alias use)
# is rejected: "billion laughs" documents are small on disk and huge in use.
MAX_NODES = 100_000
# Deeper nesting than this is refused before parsing: the C parser recurses
# and would crash the whole run on a spec nested tens of thousands deep.
MAX_DEPTH = 64
MAX_SPEC_BYTES = 1 << 20


class SpecError(Exception):
    """A spec that cannot be used, with every problem located in its file."""

    def __init__(self, path: str, problems: list[tuple[int, int, str]]):
        self.path = path
        self.problems = problems
        super().__init__(self.render())

    def render(self) -> str:
        return "\n".join(f"{self.path}:{line}:{col}: {text}" for line, col, text in self.problems)


# The start of a problem as SpecError renders it: FILE:LINE:COL: text.
_LOCATED = re.compile(r"\S.*?:\d+:\d+: ")


def is_located(message: str) -> bool:
    """Whether ``message`` begins with a place in a file, as SpecError's do."""
    return _LOCATED.match(message) is not None


_validators: dict[str, Any] = {}


def validator(name: str):
    """The compiled validator for schema ``name``, built once per process."""
    found = _validators.get(name)
    if found is None:
        from jsonschema import Draft202012Validator  # ~100 ms: import when needed

        schema = schemas.load(name)
        Draft202012Validator.check_schema(schema)
        found = _validators[name] = Draft202012Validator(schema)
    return found


def load_yaml_text(text: str) -> Any:
    """A YAML value from the command line, read as the specs' values are."""
    import yaml

    return yaml.load(text, Loader=_loader())


def load_yaml(path: str) -> Any:
    """Parse ``path`` with the safe loader; syntax errors become SpecError."""
    try:
        # Non-blocking, and only a regular file, read at most one byte past
        # the limit: a test.yaml that is a FIFO waited for ever, one linked
        # to /dev/zero took all memory.
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        with open(fd, "rb", buffering=0) as handle:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                raise SpecError(path, [(1, 1, "not a regular file: a spec is a YAML file")])
            text = handle.read(MAX_SPEC_BYTES + 1) or b""
    except OSError as exc:
        raise SpecError(path, [(1, 1, f"cannot read: {exc.strerror or exc}")]) from None
    if b"\0" in text:
        raise SpecError(path, [(1, 1, "not a text file: it holds NUL bytes")])
    if len(text) > MAX_SPEC_BYTES:
        raise SpecError(path, [(1, 1, f"larger than {MAX_SPEC_BYTES // 1024} KiB: not a spec")])
    too_deep = _too_deep(text)
    if too_deep is not None:
        raise SpecError(path, [(*too_deep, f"nested more than {MAX_DEPTH} levels deep")])
    try:
        text.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = text.count(b"\n", 0, exc.start) + 1
        col = exc.start - (text.rfind(b"\n", 0, exc.start) + 1) + 1
        raise SpecError(path, [(line, col, f"not valid UTF-8 (byte 0x{text[exc.start]:02x})")]) from None
    loader = _loader()
    import yaml

    try:
        data = yaml.load(text, Loader=loader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        problem = exc.problem or str(exc)
        if problem.startswith("duplicate key"):
            raise SpecError(path, [(line, col, problem)]) from None
        if exc.context:
            problem = f"{problem} ({exc.context})"
        if mark is not None and _char_at(text, mark.line, mark.column) == "\t":
            problem += "; it is a tab: YAML indents with spaces"
        raise SpecError(path, [(line, col, f"YAML syntax error: {problem}")]) from None
    except yaml.reader.ReaderError as exc:
        raise SpecError(
            path, [(1, 1, f"YAML error: {exc.reason} (character {exc.character!r} at byte {exc.position})")]
        ) from None
    except yaml.YAMLError as exc:
        raise SpecError(path, [(1, 1, f"YAML error: {exc}")]) from None
    except RecursionError:
        raise SpecError(path, [(1, 1, "YAML nesting is too deep")]) from None
    except ValueError as exc:  # an integer of more than 4300 digits, say
        said = str(exc).split(";", 1)[0]  # not Python's advice on sys.set_int_max_str_digits
        raise SpecError(path, [(1, 1, f"YAML value cannot be read: {said}")]) from None
    if _expanded_size(data) > MAX_NODES:
        raise SpecError(path, [(1, 1, f"the document expands to more than {MAX_NODES} values through aliases")])
    # Only YAML's escapes make a NUL (a raw one is refused above); a few
    # substring searches spare the walk to nearly every spec.
    if any(escape in text for escape in (b"\\0", b"\\x00", b"\\u0000", b"\\U00000000")):
        where = _nul_at(data, [])
        if where is not None:
            import yaml

            line, col = position(yaml.compose(text, Loader=yaml.SafeLoader), where)
            raise SpecError(path, [(line, col, "a NUL character (\\0): no command, argument or variable can hold one")])
    return data


def _nul_at(value: Any, where: list) -> list | None:
    """The key path of the first string holding a NUL, or None."""
    if isinstance(value, str):
        return where if "\0" in value else None
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for key, item in items:
        if isinstance(key, str) and "\0" in key:
            return where
        found = _nul_at(item, [*where, key])
        if found is not None:
            return found
    return None


def _too_deep(text: bytes) -> tuple[int, int] | None:
    """Where ``text`` nests flow collections ([ {) or block indentation
    deeper than MAX_DEPTH, if it does; a cheap scan that parses nothing."""
    if text.count(b"[") + text.count(b"{") > MAX_DEPTH:
        depth = 0
        line, col = 1, 0
        quote = None
        for byte in text:
            col += 1
            char = chr(byte)
            if char == "\n":
                line, col = line + 1, 0
            elif quote:
                if char == quote:
                    quote = None
            elif char in "'\"":
                quote = char
            elif char in "[{":
                depth += 1
                if depth > MAX_DEPTH:
                    return line, col
            elif char in "]}":
                depth = max(0, depth - 1)
    # Block nesting needs indentation: at least one column a level.
    for number, raw in enumerate(text.split(b"\n"), start=1):
        indent = len(raw) - len(raw.lstrip(b" -"))
        if indent > 4 * MAX_DEPTH:
            return number, indent
    return None


def _expanded_size(data: Any) -> int:
    """How many values ``data`` holds with every alias expanded, counted
    without expanding: shared containers are sized once and memoised."""
    sizes: dict[int, int] = {}
    stack = [(data, False)]
    while stack:
        value, children_done = stack.pop()
        if isinstance(value, dict):
            items = list(value.values())
        elif isinstance(value, list):
            items = value
        else:
            continue
        if id(value) in sizes:
            continue
        if not children_done:
            stack.append((value, True))
            stack.extend((item, False) for item in items if isinstance(item, (dict, list)))
            continue
        total = 1 + sum(sizes.get(id(item), 1) for item in items)
        sizes[id(value)] = min(total, MAX_NODES + 1)
    return sizes.get(id(data), 1)


def load_and_validate(path: str, schema_name: str, empty_ok: bool = True) -> dict:
    """Load ``path`` and validate it; return the mapping it holds."""
    data = load_yaml(path)
    if data is None and empty_ok:
        return {}
    if not isinstance(data, dict):
        kind = type(data).__name__
        raise SpecError(path, [(1, 1, f"expected a mapping of keys to values at the top level, found {kind}")])
    # Large suites repeat the same few specs thousands of times: validating
    # each distinct content once makes loading them several times faster.
    fingerprint = (schema_name, repr(data))
    if fingerprint in _known_valid:
        return data
    where = _not_a_number(data)
    if where is not None:
        # JSON Schema cannot refuse NaN: every comparison with it is false,
        # so `timeout: .nan` would pass `exclusiveMinimum` and `maximum`.
        line, col = key_position(path, where)
        raise SpecError(path, [(line, col, "not a number (.nan) where a value is needed" + _at(where))])
    errors = list(validator(schema_name).iter_errors(data))
    if errors:
        raise SpecError(path, locate_errors(path, errors))
    _known_valid.add(fingerprint)
    return data


_known_valid: set[tuple[str, str]] = set()


def _not_a_number(data: Any, where: tuple = ()) -> list | None:
    """The key path of the first NaN in ``data``, if any."""
    if isinstance(data, float) and data != data:
        return list(where)
    items = data.items() if isinstance(data, dict) else enumerate(data) if isinstance(data, list) else ()
    for key, value in items:
        found = _not_a_number(value, (*where, key))
        if found is not None:
            return found
    return None


def locate_errors(path: str, errors: list) -> list[tuple[int, int, str]]:
    """Turn jsonschema errors into (line, column, message), sorted by place."""
    import yaml

    try:
        with open(path, "rb") as handle:
            root = yaml.compose(handle.read(), Loader=yaml.SafeLoader)
    except yaml.YAMLError:
        root = None
    problems = []
    for error in errors:
        where = list(error.absolute_path)
        message = describe(error)
        if error.validator == "additionalProperties" and isinstance(error.instance, dict):
            allowed = error.schema.get("properties", {})
            extra = [key for key in error.instance if key not in allowed]
            for key in extra:
                line, col = position(root, where, key=key)
                hint = suggest(key, allowed)
                problems.append((line, col, f"unknown key '{key}'{hint}" + _at(where)))
            continue
        line, col = position(root, where)
        problems.append((line, col, message + _at(where)))
    return sorted(set(problems))


def _at(where: list) -> str:
    if not where:
        return ""
    text = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in where)
    return f" (at {text.lstrip('.')})"


def _char_at(text: bytes, line: int, column: int) -> str:
    """The character at 0-based ``line`` and ``column`` of ``text``, or ''."""
    lines = text.decode("utf-8", "replace").split("\n")
    return lines[line][column : column + 1] if line < len(lines) else ""


def describe(error) -> str:
    """A message a spec author understands, without JSON Schema jargon."""
    branches = error.schema.get(error.validator) if error.validator in ("oneOf", "anyOf") else None
    if branches and all("type" in s or "const" in s for s in branches):
        kinds = " or ".join(_kind(s) for s in branches)
        return f"expected {kinds}, got {_shown(error.instance)}"
    if error.validator == "type" and isinstance(error.validator_value, str):
        said = f"expected {_kind(error.schema)}, got {_shown(error.instance)}"
        if isinstance(error.instance, bool) and error.validator_value == "string":
            # YAML 1.1 reads yes/no/on/off/true/false unquoted as booleans.
            said += " (YAML reads an unquoted yes, no, on, off, true or false as true or false: quote it)"
        return said
    if error.validator == "type" and isinstance(error.validator_value, list):
        kinds = " or ".join(_kind({"type": kind}) for kind in error.validator_value)
        return f"expected {kinds}, got {_shown(error.instance)}"
    if error.validator == "exclusiveMinimum":
        return f"must be more than {error.validator_value}, got {_shown(error.instance)}"
    if error.validator == "minimum":
        return f"must be at least {error.validator_value}, got {_shown(error.instance)}"
    if error.validator == "maximum":
        return f"must be at most {error.validator_value}, got {_shown(error.instance)}"
    if error.validator == "not" and "description" in error.schema.get("not", {}):
        return error.schema["not"]["description"]
    return error.message


def _kind(schema: dict) -> str:
    if "const" in schema:
        return _shown(schema["const"])
    kind = schema["type"]
    if kind == "array":
        return "a list"
    if kind == "integer" and "minimum" in schema and "maximum" in schema:
        return f"an integer from {schema['minimum']} to {schema['maximum']}"
    names = {"string": "a string", "object": "a mapping", "integer": "an integer", "number": "a number"}
    return names.get(kind, "true or false" if kind == "boolean" else str(kind))


def _shown(value: Any) -> str:
    """A value as YAML says it: null, true, 'text'."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    return repr(value)


def suggest(key: str, allowed) -> str:
    import difflib

    close = difflib.get_close_matches(key, list(allowed), n=1, cutoff=0.6)
    return f"; did you mean '{close[0]}'?" if close else ""


def position(root, where: list, key: str | None = None) -> tuple[int, int]:
    """The 1-based line and column of the node at ``where`` (or of its ``key``)."""
    import yaml

    node = root
    if node is None:
        return 1, 1
    for part in where:
        child = _child(node, part)
        if child is None:
            break
        node = child
    if key is not None and isinstance(node, yaml.MappingNode):
        for key_node, _ in node.value:
            if getattr(key_node, "value", None) == key:
                return key_node.start_mark.line + 1, key_node.start_mark.column + 1
    return node.start_mark.line + 1, node.start_mark.column + 1


def _child(node, part):
    import yaml

    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            if getattr(key_node, "value", None) == str(part):
                return value_node
    elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
        return node.value[part]
    return None


def key_position(path: str, keys: list) -> tuple[int, int]:
    """Line and column of a value in a spec already known to parse."""
    import yaml

    try:
        with open(path, "rb") as handle:
            root = yaml.compose(handle.read(), Loader=yaml.SafeLoader)
    except (OSError, yaml.YAMLError):
        return 1, 1
    return position(root, keys)
