"""Block layout of an attention mask, for block-sparse kernels (torch only).

The (N, N) mask is cut into BLOCK x BLOCK tiles (the last row and column of tiles
padded past N). Each tile is

- empty:   no allowed (query, key) pair: the kernel skips it;
- full:    every in-range pair allowed: the kernel needs no element mask;
- partial: some allowed: the kernel applies the tile's element mask.

Stored, per mask head g (one per (b, h) of a (B, H, N, N) mask, one for an (N, N) mask):

- ``lut[g, qb, :counts[g, qb]]``: the non-empty kv blocks of q block qb, ascending;
  ``lut_tile[g, qb, e]``: index of that tile in ``partial``, or -1 when it is full;
- ``t_lut`` / ``t_lut_tile`` / ``t_counts``: the same for the transposed layout (the
  q blocks of every kv block), for the dK/dV pass;
- ``partial[p]``: the (BLOCK, BLOCK) element mask (uint8, 1 = may attend) of partial tile p.

Padded LUT entries (past ``counts``) hold kv block 0 and tile -1; kernels never read them.
Memory is O(non-empty tiles) + O(partial tiles * BLOCK^2): nothing N x N is kept. Building
reads the dense mask once; ``layout_for`` caches layouts so timed calls reuse them.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass

import torch

EMPTY, PARTIAL, FULL = 0, 1, 2

# Dense mask elements examined per chunk while building (bounds the temporaries).
_CHUNK_ELEMENTS = 1 << 26


def _as_4d(mask: torch.Tensor) -> torch.Tensor:
    if mask.dtype != torch.bool:
        raise TypeError(f"the attention mask must be bool, got {mask.dtype}")
    if not 2 <= mask.ndim <= 4:
        raise ValueError(f"the attention mask must be (N, N), (H, N, N) or (B, H, N, N); got {tuple(mask.shape)}")
    return mask.reshape((1,) * (4 - mask.ndim) + tuple(mask.shape))


def _padded_table(present: torch.Tensor, tile_index: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """Rows of ``present`` (..., T, T) -> (counts, columns, tile indices), padded to the widest row."""
    counts = present.sum(-1, dtype=torch.int32)
    width = max(int(counts.max()) if counts.numel() else 0, 1)
    # a stable sort puts the present columns first, in ascending order
    order = torch.sort((~present).to(torch.int8), dim=-1, stable=True).indices[..., :width]
    filled = torch.arange(width, device=present.device) < counts[..., None]
    cols = torch.where(filled, order, 0).to(torch.int32)
    tiles = torch.where(filled, torch.gather(tile_index, -1, order), -1).to(torch.int32)
    return counts.contiguous(), cols.contiguous(), tiles.contiguous()


@dataclass(frozen=True, eq=False)
class BlockLayout:
    n: int  # sequence length
    block: int  # BLOCK_M = BLOCK_N
    mask_batch: int  # B of the mask (1: shared by every batch element)
    mask_heads: int  # H of the mask (1: shared by every head)
    counts: torch.Tensor  # (G, T) int32, non-empty kv blocks per q block
    lut: torch.Tensor  # (G, T, W) int32, kv block indices
    lut_tile: torch.Tensor  # (G, T, W) int32, partial tile index or -1 (full)
    t_counts: torch.Tensor  # (G, T) int32, non-empty q blocks per kv block
    t_lut: torch.Tensor  # (G, T, WT) int32, q block indices
    t_lut_tile: torch.Tensor  # (G, T, WT) int32
    partial: torch.Tensor  # (P, BLOCK, BLOCK) uint8

    @classmethod
    def from_mask(cls, mask: torch.Tensor, block: int, n: int | None = None) -> BlockLayout:
        """Layout of a bool mask broadcastable to (B, H, N, N) (True = may attend)."""
        m4 = _as_4d(mask)
        n = m4.shape[-1] if n is None else n
        m4 = m4.expand(*m4.shape[:2], n, n)
        mb, mh = m4.shape[:2]
        groups = m4.reshape(mb * mh, n, n)  # a view, or one copy if the mask was broadcast
        g_count, t = groups.shape[0], -(-n // block)
        pad = t * block - n
        rows_per_chunk = max(1, _CHUNK_ELEMENTS // (t * block * block))
        kinds, partials = [], []
        in_range = torch.ones(n, n, dtype=torch.bool, device=mask.device)
        in_range = torch.nn.functional.pad(in_range, (0, pad, 0, pad)).view(t, block, t, block)
        valid = in_range.sum((1, 3), dtype=torch.int32)  # (T, T) in-range pairs per tile
        for g in range(g_count):
            for r0 in range(0, t, rows_per_chunk):
                r1 = min(t, r0 + rows_per_chunk)
                rows = groups[g, r0 * block: min(n, r1 * block)]
                rows = torch.nn.functional.pad(rows, (0, pad, 0, (r1 - r0) * block - rows.shape[0]))
                tiles = rows.view(r1 - r0, block, t, block).permute(0, 2, 1, 3)  # (rows, T, BLOCK, BLOCK)
                allowed = tiles.sum((2, 3), dtype=torch.int32)
                kind = torch.full_like(allowed, PARTIAL, dtype=torch.int8)
                kind[allowed == 0] = EMPTY
                kind[allowed == valid[r0:r1]] = FULL
                kinds.append(kind)
                partials.append(tiles[kind == PARTIAL].to(torch.uint8))
        kind = torch.cat(kinds).view(g_count, t, t)
        partial = torch.cat(partials).contiguous()
        # partial tiles are numbered in (g, q block, kv block) order, as they were gathered
        tile_index = torch.full(kind.shape, -1, dtype=torch.int32, device=mask.device)
        is_partial = kind == PARTIAL
        tile_index[is_partial] = torch.arange(partial.shape[0], dtype=torch.int32, device=mask.device)
        present = kind != EMPTY
        counts, lut, lut_tile = _padded_table(present, tile_index)
        t_counts, t_lut, t_lut_tile = _padded_table(present.transpose(1, 2), tile_index.transpose(1, 2))
        return cls(n, block, mb, mh, counts, lut, lut_tile, t_counts, t_lut, t_lut_tile, partial)

    @property
    def num_blocks(self) -> int:
        return -(-self.n // self.block)

    @property
    def num_groups(self) -> int:
        return self.mask_batch * self.mask_heads

    @property
    def num_nonempty(self) -> int:
        return int(self.counts.sum())

    @property
    def num_partial(self) -> int:
        return self.partial.shape[0]

    def group_strides(self, batch: int, heads: int) -> tuple[int, int]:
        """(sb, sh) with mask head g = b * sb + h * sh for inputs of B = batch, H = heads."""
        for have, want, what in ((self.mask_batch, batch, "batch"), (self.mask_heads, heads, "heads")):
            if have not in (1, want):
                raise ValueError(f"a mask with {have} {what} does not broadcast to {want}")
        return (self.mask_heads if self.mask_batch > 1 else 0), (1 if self.mask_heads > 1 else 0)

    def tile_kinds(self) -> torch.Tensor:
        """(G, T, T) int8 of EMPTY / PARTIAL / FULL, rebuilt from the LUT (for inspection)."""
        g, t, w = self.lut.shape
        kinds = torch.zeros(g, t, t, dtype=torch.int8, device=self.lut.device)
        filled = torch.arange(w, device=self.lut.device) < self.counts[..., None]
        kind = torch.where(self.lut_tile >= 0, PARTIAL, FULL).to(torch.int8)
        gi, qi, ei = filled.nonzero(as_tuple=True)
        kinds[gi, qi, self.lut[gi, qi, ei].long()] = kind[gi, qi, ei]
        return kinds

    def to(self, device: torch.device | str) -> BlockLayout:
        fields = ("counts", "lut", "lut_tile", "t_counts", "t_lut", "t_lut_tile", "partial")
        moved = {f: getattr(self, f).to(device) for f in fields}
        return BlockLayout(self.n, self.block, self.mask_batch, self.mask_heads, **moved)


def density(mask: torch.Tensor) -> float:
    """Fraction of (query, key) pairs allowed."""
    return int(mask.count_nonzero()) / mask.numel()


def block_density(layout: BlockLayout) -> float:
    """Fraction of tiles a block-sparse kernel visits (non-empty ones)."""
    return layout.num_nonempty / (layout.num_groups * layout.num_blocks**2)


# (data_ptr, shape, strides, device, version, n, block) -> (weakref to the mask, layout).
# While the mask lives its memory cannot hold another tensor, and views of it share its
# version counter, so a key whose mask is alive names the same contents. The weakref also
# drops the entry once the mask is freed.
_CACHE: dict[tuple, tuple[weakref.ref, BlockLayout]] = {}


def _forget(key: tuple, ref: weakref.ref) -> None:
    if key in _CACHE and _CACHE[key][0] is ref:
        del _CACHE[key]


def layout_for(mask: torch.Tensor, block: int, n: int | None = None) -> BlockLayout:
    """``BlockLayout.from_mask`` cached per mask tensor (rebuilt if the mask is written in place)."""
    n = mask.shape[-1] if n is None else n
    key = (mask.data_ptr(), tuple(mask.shape), mask.stride(), str(mask.device), mask._version, n, block)
    hit = _CACHE.get(key)
    if hit is not None and hit[0]() is not None:
        return hit[1]
    for stale in [k for k, (ref, _) in _CACHE.items() if ref() is mask and k[-2:] == (n, block)]:
        del _CACHE[stale]  # the layout of an older version of this mask
    layout = BlockLayout.from_mask(mask, block, n)
    _CACHE[key] = (weakref.ref(mask, lambda ref, key=key: _forget(key, ref)), layout)
    return layout
