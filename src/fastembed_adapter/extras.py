"""What is installed: extras checked at a subpackage's ``__init__``, and package versions for reports."""

from __future__ import annotations

import importlib.util
import platform
from collections.abc import Iterable
from importlib import metadata

from .errors import MissingExtraError

__all__ = ["missing_requirements", "require_extra", "versions"]


def versions(names: Iterable[str]) -> dict[str, str]:
    """``{"python": ..., name: version}`` for each of ``names`` that is installed (missing ones left out)."""
    found = {"python": platform.python_version()}
    for name in names:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return found


def missing_requirements(extra: str, distribution: str = "fastembed-adapter") -> list[str]:
    """The distributions ``distribution[extra]`` requires that are not installed here.

    Read from the installed distribution's own metadata (markers such as ``sys_platform`` evaluated),
    so the check cannot drift from ``pyproject.toml``. Only presence is checked: pip enforced the
    versions at install, and a newer release someone chose must not lock them out at import.
    """
    from packaging.requirements import Requirement  # huggingface-hub's dependency, always present

    try:
        requirements = metadata.requires(distribution) or []
    except metadata.PackageNotFoundError:  # not installed at all: nothing to compare against
        return []
    missing = []
    for line in requirements:
        requirement = Requirement(line)
        if requirement.marker is None or not requirement.marker.evaluate({"extra": extra}):
            continue  # a base dependency, another extra's, or not for this platform
        if not _importable(requirement.name):
            missing.append(requirement.name)
    return missing


def _importable(distribution: str) -> bool:
    """Whether ``distribution`` is installed and its top-level modules can be found (not shadowed or removed).

    A regular module named like the distribution (``sentence-transformers`` -> ``sentence_transformers``)
    answers at once; only the others are looked up in the distribution's RECORD, which for torch lists
    ~15,000 files and took ~0.35 s of every ``prepare``/``bench`` start.
    """
    try:
        spec = importlib.util.find_spec(distribution.replace("-", "_").replace(".", "_").lower())
    except (ImportError, ValueError):  # sys.modules[name] set to None: removed
        return False
    if spec is not None and spec.origin is not None:  # a namespace folder (a prepared model's onnx/) is not one
        return True
    try:
        files = metadata.distribution(distribution).files or []
    except metadata.PackageNotFoundError:
        return False
    for module in _top_level(files):
        try:
            if importlib.util.find_spec(module) is None:
                return False
        except (ImportError, ValueError):  # a parent missing, or sys.modules[name] set to None
            return False
    return True


def _top_level(files: Iterable[metadata.PackagePath]) -> set[str]:
    """Top-level importable names in a distribution's file list (its RECORD)."""
    names = set()
    for path in files:
        first = path.parts[0]
        if len(path.parts) == 1 and first.endswith(".py"):
            names.add(first[: -len(".py")])
        elif len(path.parts) > 1 and first.isidentifier() and path.name == "__init__.py" and len(path.parts) == 2:
            names.add(first)
    return names


def require_extra(extra: str) -> None:
    """Raise ``MissingExtraError`` naming ``pip install 'fastembed-adapter[extra]'`` if the extra is incomplete."""
    missing = missing_requirements(extra)
    if missing:
        raise MissingExtraError(extra, ", ".join(missing))
