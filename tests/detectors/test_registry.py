"""Plug-in discovery: the built-ins, a third-party detector, and broken plug-ins named clearly.

Entry points are patched, as a third-party distribution would add them.
"""

from __future__ import annotations

from importlib.metadata import EntryPoint
from typing import Any, Iterator

import pytest

from detectors import registry
from detectors.base import DetectContext, FactDecl
from detectors.registry import DetectorError, load_detectors, validate_detectors

GROUP = registry.ENTRY_POINT_GROUP
HERE = __name__  # entry points below name classes in this module


class ThirdParty:
    name = "watermark"
    version = "0.3.1"
    emits = ("watermark",)
    facts = (
        FactDecl("watermark.present", "boolean", "a watermark was found"),
        FactDecl("watermark.scheme", "string", "which scheme"),
    )

    def detect(self, model: Any, context: DetectContext) -> dict[str, Any]:
        return {"watermark": {"present": False, "scheme": None}}


class Listing:
    name = "listing"
    version = "1.0"
    emits = ("listing",)
    facts = (
        FactDecl("listing.items[]", "list[object]", "items"),
        FactDecl("listing.items[].name", "string", "item name"),
        FactDecl("listing.items[].tags[]", "list[object]", "nested list"),
        FactDecl("listing.items[].tags[].value", "integer", "nested value"),
    )

    def detect(self, model: Any, context: DetectContext) -> dict[str, Any]:
        return {"listing": {"items": []}}


def _variant(name: str, **changes: Any) -> type:
    """A copy of ThirdParty with some attributes changed or removed (None removes)."""
    attributes = {k: v for k, v in vars(ThirdParty).items() if not k.startswith("__")}
    attributes["name"] = name
    for key, value in changes.items():
        if value is None:
            attributes.pop(key, None)
        else:
            attributes[key] = value
    return type(name.title(), (), attributes)


NoDetect = _variant("nodetect", detect=None)
NoFacts = _variant("nofacts", facts=None)
NumericVersion = _variant("numver", version=1.0)
FactsAsList = _variant("factlist", facts=[FactDecl("factlist.x", "boolean", "x")])
NotAFactDecl = _variant("notdecl", emits=("notdecl",), facts=(("notdecl.x", "boolean", "x"),))
OutsideEmits = _variant(
    "outside", emits=("outside",), facts=(FactDecl("elsewhere.x", "boolean", "x"),)
)
StealsKey = _variant("stealer", facts=(FactDecl("watermark.y", "boolean", "y"),))
DuplicateFact = _variant(
    "dupfact",
    emits=("dupfact",),
    facts=(FactDecl("dupfact.x", "boolean", "x"), FactDecl("dupfact.x", "integer", "x")),
)
OrphanElement = _variant(
    "orphan", emits=("orphan",), facts=(FactDecl("orphan.items[].x", "string", "x"),)
)
BadPath = _variant("badpath", emits=("badpath",), facts=(FactDecl("badpath..x", "string", "x"),))
UpperName = _variant("UpperCase")
BeneathLeaf = _variant(
    "leafy",
    emits=("leafy",),
    facts=(FactDecl("leafy.x", "string", "x"), FactDecl("leafy.x.y", "string", "y")),
)


class Exploding:
    def __init__(self) -> None:
        raise RuntimeError("needs a GPU")


def _ep(name: str, target: str) -> EntryPoint:
    return EntryPoint(name=name, value=target, group=GROUP)


BUILT_INS = [
    _ep("config", "detectors.config:ConfigDetector"),
    _ep("manifest", "detectors.manifest:ManifestDetector"),
    _ep("tokenizer", "detectors.tokenizer:TokenizerDetector"),
]


@pytest.fixture(autouse=True)
def fresh_cache() -> Iterator[None]:
    load_detectors.cache_clear()
    yield
    load_detectors.cache_clear()


def _patch(monkeypatch: pytest.MonkeyPatch, eps: list[EntryPoint]) -> list[str]:
    calls: list[str] = []

    def fake_entry_points(*, group: str) -> list[EntryPoint]:
        calls.append(group)
        return [ep for ep in eps if ep.group == group]

    monkeypatch.setattr(registry, "entry_points", fake_entry_points)
    return calls


def test_installed_built_ins_are_registered() -> None:
    names = [d.name for d in load_detectors()]
    assert {"config", "manifest", "tokenizer"} <= set(names)
    assert names == sorted(names)


def test_third_party_detector_joins_the_built_ins(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = _patch(monkeypatch, [_ep("watermark", f"{HERE}:ThirdParty"), *BUILT_INS])
    detectors = load_detectors()
    assert [d.name for d in detectors] == ["config", "manifest", "tokenizer", "watermark"]
    assert isinstance(detectors[-1], ThirdParty)
    assert load_detectors() is detectors  # cached: discovery runs once
    assert calls == [GROUP]


def test_nested_lists_of_objects_are_accepted(monkeypatch: pytest.MonkeyPatch) -> None:
    _patch(monkeypatch, [_ep("listing", f"{HERE}:Listing")])
    assert [d.name for d in load_detectors()] == ["listing"]


def test_same_plugin_listed_twice_counts_once(monkeypatch: pytest.MonkeyPatch) -> None:
    # An editable install beside a regular one lists the same entry point twice.
    _patch(monkeypatch, [*BUILT_INS, *BUILT_INS])
    assert [d.name for d in load_detectors()] == ["config", "manifest", "tokenizer"]


@pytest.mark.parametrize(
    ("ep_name", "target", "problem"),
    [
        ("nodetect", "NoDetect", "has no `detect(model, context)` method"),
        ("nofacts", "NoFacts", "has no `facts`"),
        ("numver", "NumericVersion", "version 1.0 is not a non-empty string"),
        ("factlist", "FactsAsList", "`facts` is not a tuple of FactDecl"),
        ("notdecl", "NotAFactDecl", "is not a FactDecl"),
        ("outside", "OutsideEmits", "fact `elsewhere.x` is outside its emitted keys"),
        ("dupfact", "DuplicateFact", "fact `dupfact.x` is declared twice"),
        ("orphan", "OrphanElement", "needs `orphan.items[]` declared as list[object]"),
        ("badpath", "BadPath", "fact path `badpath..x` is malformed"),
        ("UpperCase", "UpperName", "is not a lower-case identifier"),
        ("leafy", "BeneathLeaf", "sits beneath the string `leafy.x`"),
        ("explode", "Exploding", "cannot be constructed: needs a GPU"),
        ("missing", "DoesNotExist", "cannot be loaded"),
        ("renamed", "ThirdParty", "entry point `renamed` names detector `watermark`"),
    ],
)
def test_broken_plugin_is_named(
    monkeypatch: pytest.MonkeyPatch, ep_name: str, target: str, problem: str
) -> None:
    _patch(monkeypatch, [*BUILT_INS, _ep(ep_name, f"{HERE}:{target}")])
    with pytest.raises(DetectorError) as caught:
        load_detectors()
    message = str(caught.value)
    assert f"detector plug-in `{ep_name}`" in message
    assert problem in message
    assert "\n" not in message


def test_unimportable_module_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    _patch(monkeypatch, [_ep("ghost", "no_such_package.detector:Ghost")])
    with pytest.raises(
        DetectorError, match=r"plug-in `ghost` \(no_such_package.detector:Ghost\): cannot be loaded"
    ):
        load_detectors()


def test_two_plugins_may_not_emit_the_same_key(monkeypatch: pytest.MonkeyPatch) -> None:
    _patch(
        monkeypatch, [_ep("watermark", f"{HERE}:ThirdParty"), _ep("stealer", f"{HERE}:StealsKey")]
    )
    with pytest.raises(
        DetectorError,
        match="detector `watermark` emits `watermark`, which detector `stealer` already emits",
    ):
        load_detectors()


def test_one_name_with_two_targets_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    _patch(
        monkeypatch,
        [_ep("watermark", f"{HERE}:ThirdParty"), _ep("watermark", f"{HERE}:Listing")],
    )
    with pytest.raises(DetectorError, match="`watermark` is registered twice"):
        load_detectors()


def test_failed_discovery_is_not_cached(monkeypatch: pytest.MonkeyPatch) -> None:
    _patch(monkeypatch, [_ep("explode", f"{HERE}:Exploding")])
    with pytest.raises(DetectorError):
        load_detectors()
    _patch(monkeypatch, [_ep("watermark", f"{HERE}:ThirdParty")])
    assert [d.name for d in load_detectors()] == ["watermark"]


def test_validate_detectors_sorts_and_refuses_duplicate_names() -> None:
    assert [d.name for d in validate_detectors([ThirdParty(), Listing()])] == [
        "listing",
        "watermark",
    ]
    with pytest.raises(DetectorError, match="two detectors are named `watermark`"):
        validate_detectors([ThirdParty(), ThirdParty()])


def test_public_api_is_pinned() -> None:
    assert sorted(registry.__all__) == [
        "DetectorError",
        "ENTRY_POINT_GROUP",
        "load_detectors",
        "validate_detector",
        "validate_detectors",
    ]
