import pytest
import torch
import torch.nn.functional as F

from effbench.data import IGNORE, associative_recall, digits, teacher_student
from effbench.models import LM_SIZES, TransformerLM, causal_attention, count_parameters
from effbench.workloads import MODELS, build_model, dataset

TABULAR = ["logreg", "mlp", "convnet"]


@pytest.mark.parametrize("name", TABULAR)
def test_classifier_shapes_and_seeded_init(name):
    data = digits()
    a, b, c = (build_model(name, data, seed) for seed in (0, 0, 1))
    out = a(data.x_train[:5])
    assert out.shape == (5, 10)
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters(), strict=True))
    if name != "logreg":  # logistic regression starts at zero on purpose
        assert not all(torch.equal(p, q) for p, q in zip(a.parameters(), c.parameters(), strict=True))


@pytest.mark.parametrize("name", TABULAR)
def test_classifier_overfits_a_tiny_batch(name):
    data = digits()
    model = build_model(name, data, 0)
    x, y = data.x_train[:16], data.y_train[:16]
    opt = torch.optim.Adam(model.parameters(), lr=0.05 if name == "logreg" else 0.01)
    for _ in range(300):
        opt.zero_grad()
        F.cross_entropy(model(x), y).backward()
        opt.step()
    assert (model(x).argmax(-1) == y).all()
    assert F.cross_entropy(model(x), y).item() < 0.05


def test_regression_model_overfits():
    data = teacher_student(n_train=32, n_eval=8, dim=4, hidden=8, noise=0.0)
    model = build_model("mlp", data, 0, hidden=32)
    opt = torch.optim.Adam(model.parameters(), lr=0.01)
    for _ in range(500):
        opt.zero_grad()
        loss = (model(data.x_train) - data.y_train).pow(2).mean()
        loss.backward()
        opt.step()
    assert loss.item() < 1e-3


@pytest.mark.parametrize("size, low, high", [("nano", 0.05e6, 0.2e6), ("tiny", 0.8e6, 1.3e6)])
def test_lm_sizes(size, low, high):
    model = TransformerLM(LM_SIZES[size], vocab=256, seed=0)
    assert low < count_parameters(model) < high
    assert count_parameters(model) == LM_SIZES[size].parameters(256)


def test_lm_named_sizes_for_the_gpu_grid():
    assert 25e6 < LM_SIZES["small"].parameters(256) < 40e6
    assert 110e6 < LM_SIZES["base"].parameters(50304) < 140e6


def test_lm_is_causal_and_seeded():
    model = TransformerLM(LM_SIZES["nano"], vocab=50, seed=0)
    tokens = torch.randint(0, 50, (2, 12))
    changed = tokens.clone()
    changed[:, 8:] = (changed[:, 8:] + 1) % 50
    a, b = model(tokens), model(changed)
    assert a.shape == (2, 12, 50)
    torch.testing.assert_close(a[:, :8], b[:, :8])  # the future does not leak
    assert not torch.allclose(a[:, 8:], b[:, 8:])
    twin = TransformerLM(LM_SIZES["nano"], vocab=50, seed=0)
    torch.testing.assert_close(twin(tokens), a)


def test_lm_attention_plug_is_used():
    calls = []

    def spy(q, k, v):
        calls.append(q.shape)
        return causal_attention(q, k, v)

    model = TransformerLM(LM_SIZES["nano"], vocab=20, seed=0, attention=spy)
    model(torch.randint(0, 20, (3, 7)))
    assert calls == [(3, 2, 7, 32)] * 2  # (B, H, T, d_head) once per layer


def test_identity_routing_changes_nothing_and_empty_routing_skips_blocks():
    tokens = torch.randint(0, 30, (2, 10))
    plain = TransformerLM(LM_SIZES["nano"], vocab=30, seed=0)

    def all_tokens(layer, x):
        index = torch.arange(x.shape[1]).expand(x.shape[0], -1)
        return index, torch.ones(index.shape)

    routed = TransformerLM(LM_SIZES["nano"], vocab=30, seed=0, router=all_tokens)
    torch.testing.assert_close(routed.hidden(tokens), plain.hidden(tokens))

    def gate_zero(layer, x):  # every block's update scaled to zero: only embeddings reach the norm
        index = torch.arange(x.shape[1]).expand(x.shape[0], -1)
        return index, torch.zeros(index.shape)

    skipped = TransformerLM(LM_SIZES["nano"], vocab=30, seed=0, router=gate_zero)
    x = skipped.embed(tokens) + skipped.position.weight[:10]
    torch.testing.assert_close(skipped.hidden(tokens), skipped.norm(x))


def test_lm_overfits_a_tiny_batch_through_the_head_plug():
    data = associative_recall(pairs=2, keys=4, values=4, n_train=8, n_eval=4)
    model = build_model("lm_nano", data, 0)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    for _ in range(150):
        opt.zero_grad()
        hidden = model.hidden(data.x_train)
        loss = F.cross_entropy(hidden.flatten(0, 1) @ model.head_weight.T, data.y_train.flatten(),
                               ignore_index=IGNORE)
        loss.backward()
        opt.step()
    assert loss.item() < 0.05


def test_every_model_name_builds_for_some_dataset():
    for name in MODELS:
        data = dataset("copying" if name.startswith("lm_") else "digits")
        if name in ("lm_small", "lm_base"):
            continue  # gpu sizes: counted above, not built on a CPU test
        assert count_parameters(build_model(name, data, 0)) > 0
    with pytest.raises(ValueError, match="needs token data"):
        build_model("lm_nano", digits(), 0)
    with pytest.raises(KeyError, match="unknown model"):
        build_model("resnet", digits(), 0)
