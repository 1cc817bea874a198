"""Grid points as a reader sees them: ordered by declared problem size, named by what sets them apart.

A task's points are dicts of parameters; most parameters are the same at every point. A point's short label
names only the parameters that vary across the task's points ("mlp · digits · linear decay",
"N=4096 · V=32000"), the declared size parameters first, and adds other varying ones only while two points
would still read alike. The full key stays in the tooltip and the CSV files.
"""

from __future__ import annotations

import json
from typing import Any

from effbench.analysis import point_size

SEPARATOR = " · "


def parse(point_json: str | None) -> dict[str, Any]:
    try:
        point = json.loads(point_json or "{}")
    except ValueError:
        return {}
    return point if isinstance(point, dict) else {}


def varying(points: dict[str, dict[str, Any]]) -> list[str]:
    """The parameters whose values (a missing one counts as a value) differ between the points, by name."""
    keys = sorted({k for p in points.values() for k in p})
    return [k for k in keys if len({json.dumps(p.get(k), sort_keys=True) for p in points.values()}) > 1]


def _part(name: str, value: Any) -> str:
    if isinstance(value, str) and "," not in value and "=" not in value:
        return value.replace("_", " ")  # a name (a model, a data set, a schedule) reads alone
    return f"{name}={value}"


def labels(points: dict[str, dict[str, Any]], sizes: list[str] | None = None) -> dict[str, str]:
    """point_key -> a short label, unique among ``points`` (the full key where nothing shorter is)."""
    if len(points) < 2:
        return {key: key for key in points}
    differ = varying(points)
    declared = [k for k in dict.fromkeys(sizes or []) if k in differ]
    chosen = list(declared)
    rest = [k for k in differ if k not in chosen]

    def render(names: list[str]) -> dict[str, str]:
        return {key: SEPARATOR.join(_part(k, p[k]) for k in names if k in p) for key, p in points.items()}

    def distinct(names: list[str]) -> int:
        return len(set(render(names).values()))

    while distinct(chosen) < len(points) and rest:
        best = max(rest, key=lambda k: (distinct([*chosen, k]), -rest.index(k)))
        chosen.append(best)
        rest.remove(best)
    shown = render([k for k in differ if k in chosen])  # in name order, as the key
    if len(set(shown.values())) < len(points):
        return {key: key for key in points}
    return {key: shown[key] or "(no varying parameter)" for key in points}


def sizes_of(points: dict[str, dict[str, Any]], sizes: list[str] | None = None) -> dict[str, float]:
    """point_key -> problem size (``analysis.point_size``)."""
    return {key: float(point_size(json.dumps(p), sizes)) for key, p in points.items()}


def ordered(points: dict[str, dict[str, Any]], sizes: list[str] | None = None) -> list[str]:
    """Point keys by problem size (the product of the declared size parameters; the positive integers of the
    point without a declaration), then by key."""
    size = {key: point_size(json.dumps(p), sizes) for key, p in points.items()}
    return sorted(points, key=lambda k: (size[k], k))


def declared_sizes(text: str | None) -> list[str] | None:
    """The ``tasks.sizes`` column's JSON list, or None (not declared, or an empty list)."""
    try:
        names = json.loads(text) if text else None
    except ValueError:
        return None
    return [str(n) for n in names] if isinstance(names, list) and names else None
