"""One colour per method across the whole site, one line dash and marker per implementation.

Colours come from colour-blind-safe palettes: Okabe & Ito's eight, then Paul Tol's "muted" and "bright"
schemes (22 in all). A method keeps its colour on every page it appears on; methods of one family never share
one while the palette lasts (the optimizer family, the largest, has 13). An implementation keeps its
(dash, marker) pair everywhere: ``reference`` is solid with circles, no two of the first eight share a marker
and no two of the first 24 share both, so two traces of one figure differ in colour or in style.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

PALETTE = (
    # Okabe-Ito (black left out: it is the colour of targets and roofs)
    "#E69F00", "#56B4E9", "#009E73", "#0072B2", "#D55E00", "#CC79A7", "#F0E442",
    # Tol muted
    "#332288", "#88CCEE", "#44AA99", "#117733", "#999933", "#DDCC77", "#CC6677", "#882255", "#AA4499",
    # Tol bright, the ones muted lacks
    "#4477AA", "#EE6677", "#228833", "#CCBB44", "#AA3377", "#BBBBBB",
)
DASHES = ("solid", "dash", "dot", "dashdot", "longdash", "longdashdot")
MARKERS = ("circle", "square", "diamond", "triangle-up", "x", "cross", "triangle-down", "star")


@dataclass(frozen=True)
class Styles:
    """method -> colour and impl -> (dash, marker), fixed for one build of the site."""

    colors: dict[str, str]
    impls: dict[str, tuple[str, str]]

    def color(self, method: str) -> str:
        return self.colors.get(method, "#555555")

    def line(self, method: str, impl: str) -> dict[str, str]:
        return {"color": self.color(method), "dash": self.impls.get(impl, (DASHES[0], MARKERS[0]))[0]}

    def marker(self, method: str, impl: str, size: int = 7) -> dict[str, object]:
        return {"color": self.color(method), "symbol": self.impls.get(impl, (DASHES[0], MARKERS[0]))[1], "size": size}


def styles(cases: Iterable[tuple[str, str, str]]) -> Styles:
    """Styles for (family, method, impl) triples: methods coloured family by family in name order, a colour
    already given to a method name kept, the first colour no other method of the family holds taken."""
    cases = sorted(set(cases))
    by_family: dict[str, list[str]] = {}
    for family, method, _ in cases:
        if method not in by_family.setdefault(family, []):
            by_family[family].append(method)
    colors: dict[str, str] = {}
    for family in sorted(by_family):
        taken = {colors[m] for m in by_family[family] if m in colors}
        for method in by_family[family]:
            if method in colors:
                continue
            free = [c for c in PALETTE if c not in taken]
            # past the palette's end: wrap (the impl's dash and marker still tell traces apart)
            colors[method] = free[0] if free else PALETTE[len(colors) % len(PALETTE)]
            taken.add(colors[method])
    names = sorted({impl for _, _, impl in cases}, key=lambda i: (i != "reference", i))
    # dash and marker both step with the index: the first 6 impls differ in dash, the first 8 in marker (for
    # marker-only figures), and no two of the first 24 share both
    impls = {impl: (DASHES[n % len(DASHES)], MARKERS[n % len(MARKERS)]) for n, impl in enumerate(names)}
    return Styles(colors, impls)
