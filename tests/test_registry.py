import pytest

from facecore.core.registry import Registry
from facecore.detection import detectors, landmarks
from facecore.evaluation import protocols
from facecore.networks import heads, losses, models
from facecore.training import teachers


def test_register_lookup_and_errors():
    reg = Registry("widget", add_with="mypkg.register_widget")

    @reg.register("b")
    def make_b():
        return "b"

    reg.register("a", lambda: "a")
    assert reg.names() == ["a", "b"] and reg.lookup("b") is make_b and reg.lookup("a")() == "a"
    with pytest.raises(ValueError, match=r"unknown widget 'c'; valid names: a, b \(add one with mypkg.register_widget\)"):
        reg.lookup("c")
    with pytest.raises(ValueError, match="non-empty string"):
        reg.register("")(make_b)
    reg.register("a", make_b)  # replacing is allowed unless unique
    assert reg.lookup("a") is make_b
    copy = reg.copy()
    copy.register("c", make_b)
    assert "c" not in reg and copy.kind == "widget" and copy.names() == ["a", "b", "c"]


def test_unique_registry_refuses_a_taken_name():
    reg = Registry("teacher", unique=True)
    reg.register("x", object)
    with pytest.raises(ValueError, match="teacher 'x' is already registered"):
        reg.register("x", object)


@pytest.mark.parametrize("module, registry, kind", [(models, "_REGISTRY", "model"), (losses, "_REGISTRY", "loss"),
                                                    (detectors, "DETECTORS", "detector"),
                                                    (protocols, "PROTOCOLS", "protocol"), (teachers, "_TEACHERS", "teacher"),
                                                    (heads, "_HEADS", "head"), (landmarks, "_MODELS", "landmark model")])
def test_every_component_kind_uses_one_registry(module, registry, kind):
    reg = getattr(module, registry)
    assert isinstance(reg, Registry) and reg.kind == kind and reg.add_with.startswith(f"{module.__name__}.")
