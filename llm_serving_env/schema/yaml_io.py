"""Strict YAML reading: like ``yaml.safe_load``, but a key written twice in one mapping is an
error (PyYAML keeps the last one silently).

    strict_load("a: 1\\na: 2")   # DuplicateKeyError: duplicate key 'a' (line 2; first at line 1)
"""

from __future__ import annotations

from typing import Any

import yaml
from yaml.constructor import ConstructorError

__all__ = ["DuplicateKeyError", "StrictSafeLoader", "strict_load", "yaml_error_text"]


class DuplicateKeyError(ConstructorError):
    """A mapping of the YAML text has the same key twice; the message names it and its lines
    (1-based)."""


class StrictSafeLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` whose mappings reject duplicate keys (merge keys ``<<`` may still
    be overridden, as YAML allows)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        if isinstance(node, yaml.MappingNode):
            seen: dict[Any, yaml.Node] = {}
            for key_node, _ in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    continue
                key = self.construct_object(key_node, deep=True)
                try:
                    first = seen.get(key)
                except TypeError:  # an unhashable key: the base class reports it
                    continue
                if first is not None:
                    raise DuplicateKeyError(
                        "while constructing a mapping", node.start_mark,
                        f"duplicate key {key!r} (line {key_node.start_mark.line + 1}; first at "
                        f"line {first.start_mark.line + 1}): write each key once",
                        key_node.start_mark)
                seen[key] = key_node
        return super().construct_mapping(node, deep=deep)


def strict_load(text: str) -> Any:
    """Parse one YAML document with :class:`StrictSafeLoader` (safe types only).

    Raises:
        yaml.YAMLError: invalid YAML, including :class:`DuplicateKeyError`.
    """
    return yaml.load(text, Loader=StrictSafeLoader)  # noqa: S506 - a SafeLoader subclass


def yaml_error_text(err: yaml.YAMLError) -> str:
    """A one-line description of a YAML error: ``line L, column C: problem``."""
    problem = getattr(err, "problem", None)
    mark = getattr(err, "problem_mark", None)
    if problem is None:
        return " ".join(str(err).split())
    where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
    return f"{where}{problem}"
