"""The site's small pieces without a DB: point order and labels, colours, table cells and CSV, headers."""

import json

from effbench.metrics import KERNEL, WORKLOAD
from effbench.site import points
from effbench.site.colors import styles
from effbench.site.tables import Cell, header, ratio_header, to_csv

# the committed cpu grid of loss/linear_cross_entropy: goldfish_k, ignore_frac, z_loss are not sizes
LCE = {
    "D=256,N=1024,V=8192,ignore_frac=0.0": {"D": 256, "N": 1024, "V": 8192, "ignore_frac": 0.0},
    "D=256,N=2048,V=32000,goldfish_k=4,ignore_frac=0.0,label_smoothing=0.1,z_loss=0.0001": {
        "D": 256, "N": 2048, "V": 32000, "goldfish_k": 4, "ignore_frac": 0.0, "label_smoothing": 0.1,
        "z_loss": 0.0001},
    "D=256,N=4096,V=32000,ignore_frac=0.1": {"D": 256, "N": 4096, "V": 32000, "ignore_frac": 0.1},
    "D=256,N=4096,V=8192,ignore_frac=0.1": {"D": 256, "N": 4096, "V": 8192, "ignore_frac": 0.1},
}


def test_linear_ce_points_are_ordered_by_declared_n_d_v():
    order = points.ordered(LCE, ["N", "D", "V"])
    products = [LCE[k]["N"] * LCE[k]["D"] * LCE[k]["V"] for k in order]
    assert products == sorted(products) and len(set(products)) == 4
    # without the declaration the integer proxy counts goldfish_k=4 as a size: the 2048 point would come last
    assert points.ordered(LCE)[-1].startswith("D=256,N=2048")


def test_labels_name_only_what_varies_and_stay_unique():
    labels = points.labels(LCE, ["N", "D", "V"])
    assert labels["D=256,N=4096,V=8192,ignore_frac=0.1"] == "N=4096 · V=8192"
    assert len(set(labels.values())) == len(LCE)
    workloads = {
        "a": {"model": "mlp", "data": "digits", "schedule": "linear_decay", "steps": 200},
        "b": {"model": "mlp", "data": "digits", "schedule": "cosine", "steps": 200},
        "c": {"model": "cnn", "data": "digits", "schedule": "cosine", "steps": 200},
    }
    got = points.labels(workloads)
    assert got["a"] == "mlp · linear decay" and got["c"] == "cnn · cosine"
    # same size, different mask parameters (attention's static and data-dependent points): still told apart
    mixed = {"B=1,N=1024,window=128": {"B": 1, "N": 1024, "window": 128},
             "B=1,N=1024,topk=4,window=128": {"B": 1, "N": 1024, "topk": 4, "window": 128},
             "B=1,N=2048,window=256": {"B": 1, "N": 2048, "window": 256}}
    got = points.labels(mixed, ["B", "N"])
    assert len(set(got.values())) == 3 and got["B=1,N=2048,window=256"] == "N=2048"
    assert points.labels({"only": {"N": 1}}) == {"only": "only"}


def test_every_method_of_a_family_gets_its_own_colour_and_every_impl_its_own_style():
    cases = [("optimizer", f"m{i:02d}", impl) for i in range(14) for impl in ("reference", "torch_fused")]
    cases += [("optimizer", "m00", f"peer{i}") for i in range(10)] + [("loss", "m00", "reference")]
    s = styles(cases)
    colours = [s.color(f"m{i:02d}") for i in range(14)]
    assert len(set(colours)) == 14 and s.color("m00") == colours[0]  # one colour per method, site-wide
    looks = {(s.line("m00", impl)["dash"], s.marker("m00", impl)["symbol"]) for impl in
             ["reference", "torch_fused", *(f"peer{i}" for i in range(10))]}
    assert len(looks) == 12 and s.line("m00", "reference")["dash"] == "solid"
    markers = {s.marker("m00", impl)["symbol"] for impl in ["reference", *(f"peer{i}" for i in range(7))]}
    assert len(markers) == 8  # marker-only figures tell the site's first eight impls apart by marker alone
    assert styles(reversed(cases)) == s  # independent of the order cases are met in


def test_cells_sort_by_value_and_the_csv_keeps_raw_numbers_and_full_keys():
    key = "D=256,N=4096,V=8192,ignore_frac=0.1"
    rows = [{"point": Cell("N=4096 · V=8192", 3, key, key), "time": Cell("2.4 s", 2400.0)},
            {"point": Cell("N=1024", 0, "x", "x"), "time": Cell("—", None)},
            {"point": Cell("-", 1, "-", "-"), "time": "— ± —"}]
    text = to_csv(["point", "time"], rows, [{"dtype": "float32"}] * 3)
    # a missing number is an empty field, however the page shows it ("—", "— ± —")
    assert text.splitlines() == ["point,time,dtype", f'"{key}",2400.0,float32', "x,,float32", "-,,float32"]


def test_headers_name_unit_and_direction_from_the_declarations():
    assert header(KERNEL["time_ms"], "time_ms", "time") == "time [ms, lower is better]"
    assert header(KERNEL["time_ms"], "time_ms", "time", "s") == "time [s, lower is better]"
    assert header(WORKLOAD["final_metric"], "final_metric") == "final_metric [metric, higher is better]"
    assert header(WORKLOAD["lr"], "lr") == "lr [lr]"
    assert ratio_header("speedup vs reference", KERNEL["time_ms"]) == "speedup vs reference [×, higher is better]"
    assert json.loads(json.dumps(points.declared_sizes('["N", "D", "V"]'))) == ["N", "D", "V"]
    assert points.declared_sizes("[]") is None and points.declared_sizes(None) is None


def test_advice_calls_a_speedup_within_noise_no_winner():
    """1.07x faster than the reference is within run-to-run noise: no 'use X'; 2.4x is a recommendation."""
    import polars as pl

    from effbench.site.advice import kernel_advice
    from effbench.site.common import Context

    def case(method, impl, ms, speedup):
        return {"device": "cpu", "hardware": "EPYC", "dtype": "float32", "method": method, "impl": impl,
                "point_key": "N=8", "status": "ok", "time_ms": ms, "speedup": speedup, "memory_ratio": 1.0}

    summary = pl.DataFrame([case("a", "reference", 10.7, 1.0), case("a", "fused", 10.0, 1.07),
                            case("b", "reference", 24.0, 1.0), case("b", "fused", 10.0, 2.4)])
    lines = kernel_advice(summary, Context(None, {}, ["N=8"], {"N=8": "N=8"}, {"N=8": 8.0}))
    assert "no implementation is clearly faster" in lines[0] and "use fused" not in lines[0]
    assert "use fused: 2.4× the reference's speed" in lines[1]
