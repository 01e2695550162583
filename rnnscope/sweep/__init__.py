"""Sweeps (SPEC section 12): a grid of ordinary training runs, on this machine or a Ray cluster.

    spec.py      the grid from a YAML spec or --set, every point checked before anything runs
    point.py     a grid point's status, read from its run directory: what a rerun skips
    worker.py    one grid point trained in a process of its own
    pool.py      where runs execute: the local process pool (one BLAS thread each)
    ray_pool.py  the same grid as Ray tasks (the optional extra rnnscope[ray])
    driver.py    the sweep: plan, run the points on a pool, track them for the live table
    summary.py   summary.json and the main effect of each swept factor
    page.py      the sweep's HTML page, DIR/report.html
"""

from .driver import make_pool, plan, run_sweep
from .page import write_sweep_report
from .spec import load_spec, name_value, spec_from_sets
from .summary import SUMMARY, format_summary

__all__ = ["SUMMARY", "format_summary", "load_spec", "make_pool", "name_value", "plan",
           "run_sweep", "spec_from_sets", "write_sweep_report"]
