"""The emulator imports nothing from the sending side, so it could become its own package."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import campaign.emulator

EMULATOR_DIR = Path(campaign.emulator.__file__).parent
SHARED_LEAVES = {"campaign.e164", "campaign.segments", "campaign.liquid_plain"}


def _campaign_imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
        elif isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
    return {name for name in names if name == "campaign" or name.startswith("campaign.")}


@pytest.mark.parametrize("path", sorted(EMULATOR_DIR.glob("*.py")), ids=lambda p: p.name)
def test_emulator_module_imports_only_the_emulator_and_shared_leaves(path: Path) -> None:
    """Each emulator module imports only campaign.emulator.* and the three shared leaf modules."""
    outside = {
        name
        for name in _campaign_imports(path)
        if not name.startswith("campaign.emulator") and name not in SHARED_LEAVES
    }
    assert outside == set()


@pytest.mark.parametrize("leaf", sorted(SHARED_LEAVES))
def test_shared_leaves_import_nothing_from_campaign(leaf: str) -> None:
    """The shared leaf modules stand alone: no import from the rest of campaign."""
    path = EMULATOR_DIR.parent / (leaf.rsplit(".", 1)[1] + ".py")
    assert _campaign_imports(path) == set()
