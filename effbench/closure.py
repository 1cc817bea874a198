"""The files a method's numbers depend on: the static import closure of its file and its task's, for the code
hash every row records (``Registry.closure``). Imports are read with ``ast`` (never executed); only effbench's
own files and modules beside a plugin count, never the standard library or site-packages.
"""

from __future__ import annotations

import ast
import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent


@dataclass(frozen=True)
class _Source:
    """A source file's content hash and the modules it imports (``(level, module, names)``, found statically)."""

    digest: str
    imports: tuple[tuple[int, str, tuple[str, ...]], ...]

    @classmethod
    def read(cls, path: Path) -> _Source:
        data = path.read_bytes()
        found: list[tuple[int, str, tuple[str, ...]]] = []
        try:
            tree = ast.parse(data, filename=str(path))
        except (SyntaxError, ValueError):
            tree = None  # still hashed by content; it imports nothing we can see
        # ast.walk, not the top level: method files import their kernels lazily, inside the implementation.
        for node in ast.walk(tree) if tree is not None else ():
            if isinstance(node, ast.Import):
                found.extend((0, alias.name, ()) for alias in node.names)
            elif isinstance(node, ast.ImportFrom):
                found.append((node.level, node.module or "", tuple(alias.name for alias in node.names)))
        return cls(hashlib.sha256(data).hexdigest(), tuple(found))

    def imported(self, path: Path, local_dirs: Sequence[Path]) -> list[Path]:
        """Files of effbench or of ``local_dirs`` that importing this file (at ``path``) executes."""
        files = _package_inits(path)
        in_package = path.is_relative_to(PACKAGE_DIR)
        for level, module, names in self.imports:
            parts = module.split(".") if module else []
            if level:  # relative: from the file's own directory, one level up per extra dot
                ups = (path.parent, *path.parent.parents)
                bases = [ups[level - 1]] if level <= len(ups) else []
            elif parts and parts[0] == PACKAGE_DIR.name:
                bases = [PACKAGE_DIR.parent]
            else:  # any other module counts only where it lives beside a plugin: never stdlib or site-packages
                bases = [] if in_package else list(local_dirs)
            for base in bases:
                hits = _module_files(base, parts)
                for name in names:  # `from pkg import mod` runs the submodule mod when there is one
                    hits += _module_files(base, [*parts, name])
                if hits:
                    files += hits
                    break
        return files


def _local_dirs(roots: Iterable[str | Path]) -> list[Path]:
    """Directories of the roots outside the effbench package (plugins): their sibling modules count."""
    dirs = {Path(r).resolve().parent for r in roots}
    return sorted(d for d in dirs if not d.is_relative_to(PACKAGE_DIR))


def _package_inits(path: Path) -> list[Path]:
    """The ``__init__.py`` of every effbench package enclosing ``path``: importing it runs them."""
    if not path.is_relative_to(PACKAGE_DIR):
        return []
    return [d / "__init__.py" for d in (path.parent, *path.parent.parents)
            if d.is_relative_to(PACKAGE_DIR) and (d / "__init__.py").is_file()]


def _module_files(base: Path, parts: Sequence[str]) -> list[Path]:
    """Files run by importing the dotted module ``parts`` from ``base``: each package's ``__init__.py``,
    then the module's file. Stops where a part does not exist (an attribute, or a module elsewhere)."""
    files: list[Path] = []
    here = base
    for i, part in enumerate(parts):
        here = here / part
        if (here / "__init__.py").is_file():
            files.append(here / "__init__.py")
        elif i == len(parts) - 1 and here.with_suffix(".py").is_file():
            files.append(here.with_suffix(".py"))
        elif not here.is_dir():  # a directory without __init__.py is a namespace package: go on
            break
    return files


def source_label(path: Path, local_dirs: Sequence[Path] = ()) -> str:
    """A closure file's machine-independent name: ``effbench/...`` or its path under a plugin's directory."""
    if path.is_relative_to(PACKAGE_DIR):
        return path.relative_to(PACKAGE_DIR.parent).as_posix()
    for base in local_dirs:
        if path.is_relative_to(base):
            return path.relative_to(base).as_posix()
    return path.name
