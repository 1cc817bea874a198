import pytest

from effbench.registry import FAMILIES, Impl, Method, UsageError, discover, load_plugin
from tests.conftest import PLUGINS


def test_every_family_has_a_task_and_a_method(registry):
    assert {t.family for t in registry.tasks.values()} == set(FAMILIES)
    assert {m.family for m in registry.methods.values()} == set(FAMILIES)


def test_every_method_is_complete(registry):
    for (task, name), method in registry.methods.items():
        assert task in registry.tasks
        assert "reference" in method.impls, name
        assert method.summary, name
        assert method.source_file and method.source_file.endswith(".py")
        if method.arxiv:
            assert method.paper, name
            assert len(method.arxiv.split(".")) == 2 and method.arxiv.replace(".", "").isdigit(), method.arxiv


def test_discovery_is_fresh_each_time():
    first, second = discover(), discover()
    assert first is not second and first.methods.keys() == second.methods.keys()


def test_plugin_adds_methods(faulty_registry, registry):
    assert ("loss/linear_cross_entropy", "planted_faults") in faulty_registry.methods
    assert ("loss/linear_cross_entropy", "planted_faults") not in registry.methods
    assert faulty_registry.plugins == [str((PLUGINS / "faulty.py").resolve())]


def test_plugin_errors_are_one_line(tmp_path):
    with pytest.raises(UsageError, match="plugin file not found"):
        load_plugin(tmp_path / "missing.py")
    broken = tmp_path / "broken.py"
    broken.write_text("import no_such_module_anywhere\n")
    with pytest.raises(UsageError, match="failed to import: ModuleNotFoundError"):
        discover([broken])
    empty = tmp_path / "empty.py"
    empty.write_text("x = 1\n")
    with pytest.raises(UsageError, match="defines no Method"):
        discover([empty])
    orphan = tmp_path / "orphan.py"
    orphan.write_text("from effbench import Method\nm = Method(task='loss/nope', name='x')\n"
                      "m.impl('reference')(lambda: None)\n")
    with pytest.raises(UsageError, match="unknown task for method 'x': 'loss/nope'"):
        discover([orphan])
    no_ref = tmp_path / "noref.py"
    no_ref.write_text("from effbench import Method\nm = Method(task='loss/linear_cross_entropy', name='x')\n")
    with pytest.raises(UsageError, match="has no 'reference'"):
        discover([no_ref])


def test_duplicate_impl_and_method_are_rejected(tmp_path):
    method = Method(task="loss/linear_cross_entropy", name="dup")
    method.impl("reference")(lambda: None)
    with pytest.raises(UsageError, match="already has an impl"):
        method.impl("reference")(lambda: None)
    clash = tmp_path / "clash.py"
    clash.write_text("from effbench import Method\nm = Method(task='optimizer/step', name='adamw')\n"
                     "m.impl('reference')(lambda: None)\n")
    with pytest.raises(UsageError, match="defined twice"):
        discover([clash])


def test_impl_capabilities_are_data():
    impl = Impl("x", lambda: None, needs=("surely_not_installed_pkg",))
    assert impl.why_not("cpu", "float32") == ("unavailable", "package 'surely_not_installed_pkg' is not installed")
    gpu_only = Impl("x", lambda: None, devices=("cuda",))
    assert gpu_only.why_not("cpu", "float32")[0] == "unavailable"
    fp32_only = Impl("x", lambda: None, dtypes=("float32",))
    assert fp32_only.why_not("cpu", "bfloat16")[0] == "skipped"
    assert fp32_only.why_not("cpu", "float32") is None


def test_bad_task_name():
    with pytest.raises(UsageError, match="family/name"):
        Method(task="linear_cross_entropy", name="x")
