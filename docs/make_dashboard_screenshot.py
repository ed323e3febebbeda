"""Regenerate ``docs/dashboard.png``: the Topology tab of TensorBoard on the bundled example.

    python docs/make_dashboard_screenshot.py [--epochs 10] [--out docs/dashboard.png]

Trains the digits CNN with the default ``TopologyMonitor`` (no ``save_diagrams``), starts ``tensorboard --logdir`` on
a loopback port with the Python running this script, opens the Topology tab in headless Chromium (the Debian
``chromium`` package), picks the layer ``fc1``, hovers one point of its persistence diagram and saves a screenshot.
The package must be installed (``pip install -e .``) so that TensorBoard finds the plugin's entry point.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import warnings
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests._web import Chromium, in_plugin, tensorboard  # noqa: E402

LAYER = "fc1"
DESCRIPTOR = "total_persistence_1"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "dashboard.png")
    args = parser.parse_args()
    if not any(e.name == "lightning_topo" for e in metadata.entry_points(group="tensorboard_plugins")):
        sys.exit(f"TensorBoard will not find the plugin: install the package into {sys.executable} (pip install -e .)")
    warnings.simplefilter("ignore")
    from lightning_topo.demo import run

    with tempfile.TemporaryDirectory() as logdir:
        run(logdir, max_epochs=args.epochs, enable_progress_bar=False, save_diagrams=False)
        with tensorboard(logdir) as base, Chromium(width=1400, height=1000) as page:
            page.open(f"{base}/#lightning_topo")
            page.wait_for(in_plugin("return d.body.dataset.ltReady === '1';"))
            page.evaluate(
                in_plugin(
                    "d.body.dataset.ltReady = '';"
                    f"const layer = d.getElementById('lt-layer'); layer.value = {json.dumps(LAYER)};"
                    "layer.dispatchEvent(new Event('change'));"
                    f"const desc = d.getElementById('lt-descriptor'); desc.value = {json.dumps(DESCRIPTOR)};"
                    "desc.dispatchEvent(new Event('change')); return true;"
                )
            )
            page.wait_for(in_plugin("return d.body.dataset.ltReady === '1';"))
            # hover the longest-lived finite H1 point, so the picture shows the tooltip
            where = page.evaluate(
                in_plugin(
                    "const pts = [...d.querySelectorAll('circle.diagram-point[data-dim=\"1\"]')];"
                    "const life = (p) => parseFloat(p.dataset.tip.split('lifetime ')[1]) || 0;"
                    "const p = pts.sort((a, b) => life(b) - life(a))[0];"
                    "const r = p.getBoundingClientRect(), o = f.getBoundingClientRect();"
                    "return {x: o.left + r.left + r.width / 2, y: o.top + r.top + r.height / 2};"
                )
            )
            page.move_mouse(where["x"], where["y"])
            page.wait_for(in_plugin("return !d.querySelector('.lt-tip').hidden;"))
            page.screenshot(args.out)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
