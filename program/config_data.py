"""Plain data (a YAML or JSON file) to frozen configs and back.

``from_dict`` builds any config dataclass of ``program.config`` (or of ``optimize.experiment``) from
plain data, converting nested configs and naming every unknown key or wrong-typed value with its
path; ``to_dict`` gives plain data again (it holds no secrets: only a key's variable name).

Example:
    >>> from program.config import VoteConfig
    >>> to_dict(from_dict(VoteConfig, {"samples": 3}))["samples"]
    3
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import fields
from typing import TYPE_CHECKING, Any, TypeVar, get_args, get_origin

from program.config import ConfigError, check_known_keys

__all__ = ["from_dict", "to_dict"]

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

T = TypeVar("T", bound="DataclassInstance")


def from_dict(cls: type[T], data: Any, *, where: str = "config") -> T:
    """Build a config dataclass from plain data, naming any unknown key or bad value.

    Example:
        >>> from program.config import ScaleConfig
        >>> from_dict(ScaleConfig, {"threshold": 0.3}).threshold
        0.3
    """
    if isinstance(data, cls):
        return data
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: expected a mapping for {cls.__name__}, got {type(data).__name__}.")
    hints = typing.get_type_hints(cls)
    known = {f.name for f in fields(cls) if f.init}
    check_known_keys(data, known, where, after=f" for {cls.__name__}")
    kwargs = {key: _convert(hints[key], value, f"{where}.{key}") for key, value in data.items()}
    try:
        return cls(**kwargs)
    except ConfigError as exc:
        raise ConfigError(f"{where}: {exc}") from None
    except TypeError as exc:
        raise ConfigError(f"{where}: {exc}") from None


def _convert(hint: Any, value: Any, where: str) -> Any:
    origin = get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        options = [a for a in get_args(hint) if a is not type(None)]
        if value is None:
            return None
        for option in options:
            if isinstance(option, type) and dataclasses.is_dataclass(option):
                return from_dict(option, value, where=where)
        return _convert(options[0], value, where) if len(options) == 1 else value
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        return from_dict(hint, value, where=where)
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if hint in (int, float, str, bool) and not isinstance(value, hint):
        raise ConfigError(f"{where}: expected {hint.__name__}, got {value!r}.")
    return value


def to_dict(config: Any) -> dict[str, Any]:
    """Plain data for a config (YAML/JSON-ready). Holds no secrets: only the key's variable name."""
    return dataclasses.asdict(config)
