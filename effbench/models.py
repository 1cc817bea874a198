"""The model zoo: named sizes, deterministic initialisation from a seed.

Small classifiers for 8x8 images and tabular data (each exposes ``features(x)`` and its
linear ``head``, so a classification loss can see what the head sees), and a
decoder-only transformer LM with three plug points:

- ``attention(q, k, v) -> out`` on (B, H, T, d): any sparse pattern drops in (default:
  causal SDPA);
- the LM head + loss: :meth:`TransformerLM.hidden` returns final hidden states and
  :attr:`TransformerLM.head_weight` the (V, D) classifier, so a fused linear
  cross-entropy ``loss(hidden, weight, targets, ignore_index)`` never needs the logits;
- ``router(layer, x) -> (index (B, k), gate (B, k)) | None``: token routing in the manner
  of Mixture-of-Depths; a routed block processes only the chosen tokens and adds
  ``gate * block_update`` to them, the rest pass through unchanged.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

Attention = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]
Router = Callable[[int, torch.Tensor], tuple[torch.Tensor, torch.Tensor] | None]


def causal_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    return F.scaled_dot_product_attention(q, k, v, is_causal=True)


def _seeded(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _init_linear(layer: nn.Linear, gen: torch.Generator, std: float | None = None) -> None:
    std = std if std is not None else layer.in_features**-0.5
    with torch.no_grad():
        layer.weight.copy_(torch.randn(layer.weight.shape, generator=gen) * std)
        if layer.bias is not None:
            layer.bias.zero_()


class LogisticRegression(nn.Module):
    def __init__(self, n_in: int, n_out: int, seed: int) -> None:
        super().__init__()
        self.linear = nn.Linear(n_in, n_out)
        with torch.no_grad():
            self.linear.weight.zero_()  # the convex problem's usual start
            self.linear.bias.zero_()

    @property
    def head(self) -> nn.Linear:
        return self.linear

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(x)


class MLP(nn.Module):
    def __init__(self, n_in: int, hidden: int, n_out: int, seed: int, depth: int = 2) -> None:
        super().__init__()
        gen = _seeded(seed)
        sizes = [n_in] + [hidden] * (depth - 1) + [n_out]
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in zip(sizes[:-1], sizes[1:], strict=True))
        for layer in self.layers:
            _init_linear(layer, gen, std=(2 / layer.in_features) ** 0.5)  # He init for ReLU

    @property
    def head(self) -> nn.Linear:
        return self.layers[-1]

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """What the classifier head sees (N, hidden)."""
        for layer in self.layers[:-1]:
            x = F.relu(layer(x))
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


class ConvNet(nn.Module):
    """Two 3x3 conv layers and a linear classifier for 1x8x8 images (digits), inputs flattened (N, 64)."""

    def __init__(self, n_out: int, seed: int, channels: int = 16) -> None:
        super().__init__()
        gen = _seeded(seed)
        self.conv1 = nn.Conv2d(1, channels, 3, padding=1)
        self.conv2 = nn.Conv2d(channels, 2 * channels, 3, padding=1)
        self.fc = nn.Linear(2 * channels * 4 * 4, n_out)
        with torch.no_grad():
            for conv in (self.conv1, self.conv2):
                fan_in = conv.in_channels * 9
                conv.weight.copy_(torch.randn(conv.weight.shape, generator=gen) * (2 / fan_in) ** 0.5)
                conv.bias.zero_()
        _init_linear(self.fc, gen)

    @property
    def head(self) -> nn.Linear:
        return self.fc

    def features(self, x: torch.Tensor) -> torch.Tensor:
        x = x.reshape(-1, 1, 8, 8)
        x = F.relu(self.conv1(x))
        return F.max_pool2d(F.relu(self.conv2(x)), 2).flatten(1)  # (B, 2C * 4 * 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.features(x))


@dataclass(frozen=True)
class LMConfig:
    d_model: int
    layers: int
    heads: int
    context: int

    def parameters(self, vocab: int) -> int:
        """Parameter count for a vocabulary (tied embedding/head, learned positions, RMSNorm gains)."""
        per_layer = 12 * self.d_model**2 + 2 * self.d_model
        return vocab * self.d_model + self.context * self.d_model + self.layers * per_layer + self.d_model


# Named sizes. Counts with a byte vocabulary (256) unless said: nano ~0.11M (tests),
# tiny ~1.0M (cpu grid), small ~31.6M, base ~124M with GPT-2's 50304-token vocabulary (gpu grid).
LM_SIZES: dict[str, LMConfig] = {
    "nano": LMConfig(d_model=64, layers=2, heads=2, context=128),
    "tiny": LMConfig(d_model=128, layers=5, heads=4, context=256),
    "small": LMConfig(d_model=512, layers=10, heads=8, context=1024),
    "base": LMConfig(d_model=768, layers=12, heads=12, context=1024),
}


class RMSNorm(nn.Module):
    def __init__(self, dim: int) -> None:
        super().__init__()
        self.gain = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + 1e-6) * self.gain


class Block(nn.Module):
    def __init__(self, config: LMConfig, gen: torch.Generator, attention: Attention) -> None:
        super().__init__()
        d = config.d_model
        self.heads = config.heads
        self.attention = attention
        self.norm1, self.norm2 = RMSNorm(d), RMSNorm(d)
        self.qkv = nn.Linear(d, 3 * d, bias=False)
        self.proj = nn.Linear(d, d, bias=False)
        self.up = nn.Linear(d, 4 * d, bias=False)
        self.down = nn.Linear(4 * d, d, bias=False)
        residual_std = 0.02 / math.sqrt(2 * config.layers)  # GPT-2's scaled init of residual projections
        for layer, std in ((self.qkv, 0.02), (self.proj, residual_std), (self.up, 0.02), (self.down, residual_std)):
            _init_linear(layer, gen, std)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, d = x.shape
        q, k, v = self.qkv(self.norm1(x)).split(d, dim=-1)
        q, k, v = (z.view(b, t, self.heads, d // self.heads).transpose(1, 2) for z in (q, k, v))  # (B, H, T, dh)
        attended = self.attention(q, k, v).transpose(1, 2).reshape(b, t, d)
        x = x + self.proj(attended)
        return x + self.down(F.gelu(self.up(self.norm2(x))))


class TransformerLM(nn.Module):
    """Decoder-only LM: learned positions, pre-norm blocks, tied embedding and head."""

    def __init__(self, config: LMConfig, vocab: int, seed: int, attention: Attention = causal_attention,
                 router: Router | None = None) -> None:
        super().__init__()
        gen = _seeded(seed)
        self.config = config
        self.router = router
        self.embed = nn.Embedding(vocab, config.d_model)
        self.position = nn.Embedding(config.context, config.d_model)
        with torch.no_grad():
            self.embed.weight.copy_(torch.randn(self.embed.weight.shape, generator=gen) * 0.02)
            self.position.weight.copy_(torch.randn(self.position.weight.shape, generator=gen) * 0.01)
        self.blocks = nn.ModuleList(Block(config, gen, attention) for _ in range(config.layers))
        self.norm = RMSNorm(config.d_model)

    @property
    def head_weight(self) -> torch.Tensor:
        return self.embed.weight  # (V, D), tied

    def hidden(self, tokens: torch.Tensor) -> torch.Tensor:
        """Final hidden states (B, T, D): what the LM head + loss consumes."""
        t = tokens.shape[1]
        if t > self.config.context:
            raise ValueError(f"sequence length {t} exceeds the model's context {self.config.context}")
        x = self.embed(tokens) + self.position.weight[:t]
        for i, block in enumerate(self.blocks):
            route = self.router(i, x) if self.router is not None else None
            if route is None:
                x = block(x)
                continue
            index, gate = route  # (B, k) token positions in increasing order, (B, k) weights
            gather = index[..., None].expand(-1, -1, x.shape[-1])
            chosen = x.gather(1, gather)
            update = block(chosen) - chosen
            x = x.scatter(1, gather, chosen + gate[..., None] * update)
        return self.norm(x)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """Logits (B, T, V); training can skip them with :meth:`hidden` and a fused head loss."""
        return self.hidden(tokens) @ self.head_weight.T


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
