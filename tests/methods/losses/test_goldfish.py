import torch

from effbench.data import IGNORE, Dataset
from effbench.methods.losses.goldfish import reference
from effbench.methods.losses.standard import reference as standard
from effbench.tasks._tokens import goldfish_mask
from effbench.tasks.memorization import extraction


def test_goldfish_mask_drops_about_one_in_k_by_context():
    tokens = torch.randint(0, 50_000, (20_000,), generator=torch.Generator().manual_seed(0))
    drop = goldfish_mask(tokens, k=4, h=13)
    assert not drop[:13].any()  # no full context yet
    assert abs(drop.float().mean().item() - 0.25) < 0.02
    assert torch.equal(drop, goldfish_mask(tokens, k=4, h=13))
    repeated = torch.cat([tokens[:100], tokens[:100]])  # the same contexts drop the same tokens
    again = goldfish_mask(repeated, k=4, h=13)
    assert torch.equal(again[113:200], again[13:100])


def test_goldfish_targets_follow_the_mask_of_each_row():
    stream = torch.randint(0, 256, (3, 65), generator=torch.Generator().manual_seed(1))
    x, y = stream[:, :-1], stream[:, 1:]
    out = reference(x, y)
    for row in range(3):
        drop = goldfish_mask(stream[row], 4, 13)[1:]
        assert torch.equal(out[row] == IGNORE, drop)
        assert torch.equal(out[row][~drop], y[row][~drop])
    assert torch.equal(standard(x, y), y)


class Oracle(torch.nn.Module):
    """Predicts the true next byte of the known sequences: everything is memorised."""

    def __init__(self, text: torch.Tensor) -> None:
        super().__init__()
        self.text = text

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        t = tokens.shape[1]
        nxt = self.text[:, 1 : t + 1]
        return torch.nn.functional.one_hot(nxt, 256).float()


def test_extraction_of_a_perfect_memoriser_is_one():
    text = torch.randint(0, 256, (4, 17), generator=torch.Generator().manual_seed(2))
    data = Dataset("t", "lm", text[:, :-1], text[:, 1:], text[:, :-1], text[:, 1:], 256, "token_accuracy", "h")
    assert extraction(Oracle(text), data) == {"extraction_rate": 1.0, "token_match": 1.0}
    scrambled = Oracle(torch.roll(text, 1, dims=0))
    assert extraction(scrambled, data)["extraction_rate"] == 0.0
