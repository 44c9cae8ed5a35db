"""Optional extras are checked at their subpackage's import, from the installed distribution's metadata."""

from __future__ import annotations

import sys
from importlib import metadata

import pytest

from fastembed_adapter import MissingExtraError, extras
from fastembed_adapter.extras import missing_requirements, require_extra, versions

FAKE_REQUIRES = [
    "numpy>=1.24",  # a base dependency: never part of an extra
    "numpy>=1.24; extra == 'serve'",
    "no-such-dist-xyz>=1; extra == 'serve'",
    "no-such-dist-win-only; sys_platform == 'win32-never' and extra == 'serve'",
    "no-such-dist-other-extra; extra == 'prepare'",
]


@pytest.fixture
def fake_metadata(monkeypatch):
    real = metadata.requires
    monkeypatch.setattr(metadata, "requires", lambda name: FAKE_REQUIRES if name == "fastembed-adapter" else real(name))


def test_missing_distribution_names_the_extra(fake_metadata):
    assert missing_requirements("serve") == ["no-such-dist-xyz"]  # markers evaluated: not the win32 one
    with pytest.raises(MissingExtraError, match=r"'serve' extra; not installed: no-such-dist-xyz.*pip install "
                       r"'fastembed-adapter\[serve\]'") as info:
        require_extra("serve")
    assert info.value.missing == "no-such-dist-xyz" and isinstance(info.value, ImportError)
    assert missing_requirements("prepare") == ["no-such-dist-other-extra"]


def test_the_installed_extras_are_complete():
    """This environment installed every extra (the dev extra): the real metadata says nothing is missing."""
    for extra in ("prepare", "serve", "bench"):
        assert missing_requirements(extra) == [], extra
        require_extra(extra)
    assert extras.missing_requirements("serve", distribution="no-such-dist-xyz") == []  # not installed: no table


def test_versions_leave_out_what_is_missing():
    found = versions(["numpy", "no-such-dist-xyz"])
    assert found["numpy"] == metadata.version("numpy") and "python" in found
    assert "no-such-dist-xyz" not in found


def test_a_module_named_like_the_distribution_skips_its_record(monkeypatch, tmp_path):
    """``sentence-transformers`` -> ``sentence_transformers``: found without reading RECORD (torch's: ~15,000 files)."""

    def no_record(name):
        raise AssertionError(f"read the RECORD of {name}")

    monkeypatch.setattr(metadata, "distribution", no_record)
    assert extras._importable("numpy") and extras._importable("prometheus-client")
    monkeypatch.undo()
    (tmp_path / "no_such_dist_xyz").mkdir()  # a namespace folder (like a prepared model's onnx/) is no install
    monkeypatch.syspath_prepend(str(tmp_path))
    assert not extras._importable("no-such-dist-xyz")
    monkeypatch.setitem(sys.modules, "numpy", None)
    assert not extras._importable("numpy")
