"""docs/model-card.md is the render of scripts/model_card.py (manifest + docs/quality.md)."""
import importlib.util
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _script():
    spec = importlib.util.spec_from_file_location("model_card", ROOT / "scripts" / "model_card.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_committed_model_card_is_the_render():
    mc = _script()
    assert (ROOT / "docs" / "model-card.md").read_text() == mc.build(), "run `python scripts/model_card.py`"


def test_model_card_lists_every_shipped_network_with_its_iterations():
    mc = _script()
    manifest = json.loads(mc.MANIFEST.read_text())
    card = mc.build()
    for key, f in manifest["files"].items():
        assert f"`{f['file']}`" in card, key
        if f.get("iters"):
            assert f"{int(f['iters']):,}" in card, key
    assert "| RM only |" in card and "## Limits" in card
