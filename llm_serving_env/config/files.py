"""Config files: load (a path or a shipped preset name), save, and ``--set`` overrides.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from llm_serving_env.config.sim_config import SimConfig
from llm_serving_env.resources import CONFIGS_DIR
from llm_serving_env.schema.fields import (
    ConfigError,
)
from llm_serving_env.schema.yaml_io import strict_load, yaml_error_text


def _preset_dirs() -> list[Path]:
    return [CONFIGS_DIR, CONFIGS_DIR / "benchmarks"]


def available_presets() -> list[str]:
    """Names of the presets: stems of ``configs/*.yaml`` and ``configs/benchmarks/*.yaml``."""
    names: set[str] = set()
    for folder in _preset_dirs():
        if folder.is_dir():
            names.update(p.stem for p in folder.glob("*.yaml") if p.is_file())
    return sorted(names)


def _find_preset(name: str) -> Path | None:
    for folder in _preset_dirs():
        candidate = folder / f"{name}.yaml"
        if candidate.is_file():
            return candidate
    return None


def load_config(source: str | os.PathLike[str] | Mapping[str, Any] | SimConfig) -> SimConfig:
    """Load and validate a configuration.

    Args:
        source: a YAML file path; a preset name (``configs/<name>.yaml`` or
            ``configs/benchmarks/<name>.yaml`` in the repository); a mapping in YAML form; or
            a :class:`SimConfig` (returned as is).

    Raises:
        ConfigError: unknown file/preset (the message lists the presets), unreadable YAML, or
            any invalid field (the message starts with the file name).
    """
    if isinstance(source, SimConfig):
        return source
    if isinstance(source, Mapping):
        return SimConfig.from_dict(source)
    if not isinstance(source, (str, os.PathLike)):
        raise ConfigError(
            "must be a YAML path, a preset name or a mapping", "config source", source
        )
    path = Path(source)
    if not path.is_file():
        preset = _find_preset(str(source)) if isinstance(source, str) else None
        if preset is None:
            presets = ", ".join(available_presets()) or "(none)"
            raise ConfigError(
                f"no such config file and no preset of that name; available presets: {presets}",
                "config",
                str(source),
            )
        path = preset
    try:
        data = strict_load(path.read_text(encoding="utf-8"))
    except OSError as err:
        raise ConfigError(f"cannot read YAML: {err.strerror or err}",
                          source=str(path)) from err
    except yaml.YAMLError as err:  # including a key written twice
        raise ConfigError(f"cannot read YAML: {yaml_error_text(err)}",
                          source=str(path)) from err
    try:
        return SimConfig.from_dict(data)
    except ConfigError as err:
        raise ConfigError(err.reason, err.path, err.value, source=str(path)) from None


def save_config(cfg: SimConfig, path: str | os.PathLike[str]) -> Path:
    """Write ``cfg`` as YAML to ``path`` (parent directories are created); returns the path."""
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(yaml.safe_dump(cfg.to_dict(), sort_keys=False), encoding="utf-8")
    return out


def parse_override(text: str) -> tuple[str, Any]:
    """Parse a command-line override ``key.path=value`` into ``(key_path, value)``.

    The value is parsed as strict YAML (a key written twice is an error): ``3`` -> 3,
    ``0.5`` -> 0.5, ``null`` -> None, ``{dist: fixed, value: 3}`` -> a dict.
    An empty value is an error (write ``null``).
    """
    if not isinstance(text, str) or "=" not in text:
        raise ConfigError("malformed override; expected key.path=value", "--set", text)
    key, raw = text.split("=", 1)
    key = key.strip()
    if not key or any(not part or part != part.strip() for part in key.split(".")):
        raise ConfigError("malformed override key; expected key.path=value", "--set", text)
    if not raw.strip():
        raise ConfigError("empty value in override (write null for none)", "--set", text)
    try:
        value = strict_load(raw)
    except yaml.YAMLError as err:
        raise ConfigError(f"value is not valid YAML: {yaml_error_text(err)}", "--set",
                          text) from err
    return key, value

