"""The Topology dashboard: a TensorBoard plugin (:mod:`.plugin`) and the summaries it reads (:mod:`.summary`).

``pip install lightning-topo`` registers the plugin through TensorBoard's ``tensorboard_plugins`` entry point, so
``tensorboard --logdir ...`` shows a "Topology" tab. :mod:`.plugin` is imported by TensorBoard only, not here.
"""

from lightning_topo.dashboard.summary import FORMAT_VERSION, PLUGIN_NAME, add_report, report_payload, report_summary

__all__ = ["FORMAT_VERSION", "PLUGIN_NAME", "add_report", "report_payload", "report_summary"]
