"""Optional extras are checked at their subpackage's import, with the install command in the error."""

from __future__ import annotations

import pytest

from fastembed_adapter import MissingExtraError
from fastembed_adapter.extras import require_extra


def test_missing_module_names_the_extra():
    with pytest.raises(MissingExtraError, match=r"pip install 'fastembed-adapter\[serve\]'") as info:
        require_extra("serve", ("json", "no_such_module_xyz"))
    assert info.value.missing == "no_such_module_xyz" and isinstance(info.value, ImportError)


def test_missing_parent_package():
    with pytest.raises(MissingExtraError, match=r"no_such_pkg_xyz\.sub"):
        require_extra("prepare", ("no_such_pkg_xyz.sub",))


def test_present_modules_pass():
    require_extra("prepare", ("json", "numpy"))
