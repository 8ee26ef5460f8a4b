"""A runbook's parameters: read from its tagged cell without papermill, and `-p` values checked as data.

Papermill pastes parameter values into the notebook as code: every value here is checked to be plain
data (text, numbers, true/false, none, lists and objects of those) of its default's type first.
"""

import ast
import io
import json
import tokenize
from pathlib import Path

from .errors import ParameterError


def parameters(notebook: Path) -> dict[str, dict]:
    """The notebook's parameters with their inferred type, default and help, as papermill's
    `inspect_notebook` gives them, read from the tagged cell without importing papermill or nbformat
    (which take seconds to import): each `name = default  # help` line of the parameters cell."""
    cells = json.loads(Path(notebook).read_text(encoding="utf-8"))["cells"]
    tagged = [c for c in cells if "parameters" in c.get("metadata", {}).get("tags", [])]
    if not tagged:
        return {}
    source = "".join(tagged[0]["source"])
    comments = {tok.start[0]: tok.string.lstrip("#").strip()
                for tok in tokenize.generate_tokens(io.StringIO(source).readline) if tok.type == tokenize.COMMENT}
    found = {}
    for node in ast.parse(source).body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            name, annotation = node.targets[0].id, None
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and node.value is not None:
            name, annotation = node.target.id, ast.get_source_segment(source, node.annotation)
        else:
            continue
        found[name] = {"name": name, "inferred_type_name": annotation or "None",
                       "default": ast.get_source_segment(source, node.value), "help": comments.get(node.end_lineno, "")}
    return found


def default_value(raw: str):
    """The value of a default as written in a runbook's parameters cell (our own source, a Python literal)."""
    try:
        return ast.literal_eval(raw)
    except (ValueError, SyntaxError):
        lowered = raw.lower()
        if lowered in ("true", "false"):
            return lowered == "true"
        if lowered in ("none", "null"):
            return None
        return raw


_DATA = (str, int, float, bool, type(None))


def is_data(value) -> bool:
    """Whether `value` is plain data papermill writes as a literal: str, numbers, bool, None, and lists
    and dicts of those (bytes, sets, tuples and objects it would paste into the code as they are)."""
    if isinstance(value, _DATA):
        return True
    if isinstance(value, list):
        return all(is_data(v) for v in value)
    if isinstance(value, dict):
        return all(isinstance(k, str) and is_data(v) for k, v in value.items())
    return False


def parse_value(raw: str):
    """A `-p` value as data, never code: true/false, none/null, else JSON (numbers, lists, objects,
    quoted strings), else the text itself. Never Python's literal_eval: b'…', sets and tuples are text."""
    lowered = raw.strip().lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    if lowered in ("none", "null"):
        return None
    try:
        return json.loads(raw)
    except ValueError:
        return raw


def kind_of(default: str) -> str:
    """The type a parameter takes, from its default's source text: int, float, bool, str, or any."""
    value = default_value(default)
    return "any" if value is None else type(value).__name__


def validate(notebook: Path, given: dict[str, str]) -> dict:
    """Parsed values for the `-p NAME VALUE` pairs given, or ParameterError naming the first bad one.

    A value must have the type of the parameter's default (an int default wants an int; a float
    default takes an int too; a str default takes any text); a None default takes anything.
    """
    declared = parameters(notebook)
    values = {}
    for name, raw in given.items():
        if name not in declared:
            known = ", ".join(declared) or "none"
            raise ParameterError(f"{notebook.stem} has no parameter {name!r}; its parameters: {known}")
        default = default_value(declared[name]["default"])
        value = parse_value(raw) if isinstance(raw, str) else raw
        if not is_data(value):
            raise ParameterError(f"{notebook.stem}: parameter {name} must be plain data (text, a number, true/false, "
                                 f"a list or an object), not {type(value).__name__}")
        if isinstance(default, str):
            value = raw if isinstance(raw, str) else str(raw)
        elif default is not None and value is not None:
            wanted = (int, float) if isinstance(default, float) else (type(default),)
            if not isinstance(value, wanted) or (isinstance(value, bool) and not isinstance(default, bool)):
                kind = type(default).__name__
                raise ParameterError(f"{notebook.stem}: parameter {name} must be {kind} like its default "
                                     f"{declared[name]['default']}, not {raw!r}")
        values[name] = value
    return values
