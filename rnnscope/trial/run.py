"""A trial's forks and controls run on the sweep machinery (the local pool or Ray, the same
skip and resume semantics: the same command again finishes what is missing), then judged
(verdict.py) into RUN/try/try.json and RUN/try/report.html (page.py)."""

from __future__ import annotations

import json

from .. import runs
from ..sweep.driver import run_sweep
from ..sweep.point import check_existing
from ..sweep.pool import Pool
from ..sweep.spec import check_data
from .page import write_trial_report
from .plan import Plan
from .verdict import judge

TRY_JSON = "try.json"


def run_trial(plan: Plan, pool: Pool, display) -> dict:
    """Run what is not yet finished of the plan, judge it, write try.json and the page.
    A Ctrl-C (KeyboardInterrupt) stops the runs checkpointed and propagates."""
    points = [f.point for f in plan.forks]
    check_existing(points, plan.out)
    check_data([p for p in points if p.cmd is None])
    run_sweep(points, plan.out, pool, display, name=f"try {plan.run.name}")
    doc = judge(plan)
    runs.write_text(plan.out / TRY_JSON, json.dumps(doc, indent=2) + "\n")
    doc["report"] = str(write_trial_report(plan, doc))
    return doc
