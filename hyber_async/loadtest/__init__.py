"""Load testing a Hyber server (or the emulator) with the ordinary client.

Needs the ``loadtest`` extra (``hdrhistogram`` for the histograms, ``plotly`` for the HTML
report); the core library never imports this package.

- ``Workload``: what is sent and when (open loop at a constant or ramping rate of recipients
  per second, or a closed loop with N requests in flight), and its schedule;
- ``Recorder``: latencies in HDR histograms, corrected for coordinated omission (from each
  request's intended start) and uncorrected; answers by status; recipients by outcome; a
  per-second series; ``to_json`` gives the result, ``merge_results`` merges results;
- ``run_workload(client, workload)``: run it through a ``HyberClient``; ``loadtest_client``
  makes one that counts every answer; ``run(workload, target, workers=N)`` does it all in
  one or more processes; ``emulator_process`` starts the emulator in its own process;
- ``follow_jobs`` (``Follow`` for ``run``): poll the accepted jobs afterwards, for the time to
  final status and the shares delivered, expired and failed;
- ``parse_threshold`` / ``check_thresholds``: pass/fail limits such as ``p99<500ms``;
- ``summary``, ``compare``, ``render_html``: the text table, a comparison, the HTML report.

The ``hyber-async loadtest`` command drives all of this.
"""

from ._local import Follow, Target, emulator_process, emulator_stats, run
from ._recorder import Recorder, merge_results
from ._report import compare, render_html, summary
from ._runner import follow_jobs, loadtest_client, run_workload
from ._thresholds import Threshold, check_thresholds, parse_threshold
from ._workload import DEFAULT_NUMBERS, Workload

__all__ = [
    "DEFAULT_NUMBERS",
    "Follow",
    "Recorder",
    "Target",
    "Threshold",
    "Workload",
    "check_thresholds",
    "compare",
    "emulator_process",
    "emulator_stats",
    "follow_jobs",
    "loadtest_client",
    "merge_results",
    "parse_threshold",
    "render_html",
    "run",
    "run_workload",
    "summary",
]
