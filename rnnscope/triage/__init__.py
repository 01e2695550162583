"""The triage (SPEC section 4): it reads a run's panel records and says what is wrong, with
evidence, and what to try next.

    history.py  what every rule reads: the History of records, THRESHOLDS, pattern helpers
    rules.py    one detection function per finding id, registered in RULES with its readings
    story.py    one story per run: set aside, consequences folded under their cause, verdict;
                the live Watch, diagnose(), triage.json
    words.py    a detection as the finding a user reads: what was seen, suspects, next steps
    across.py   findings across runs (rnnscope compare): capacity_not_limiting

A new rule is a change in this package only: a function and a RULES row in rules.py, its
thresholds in history.THRESHOLDS, its words in words.py.
"""

from .history import SEVERITY, THRESHOLDS
from .story import Watch, diagnose, diagnose_run, read_triage, write_triage
from .words import format_diagnosis, format_finding, headline

__all__ = ["SEVERITY", "THRESHOLDS", "Watch", "diagnose", "diagnose_run", "format_diagnosis",
           "format_finding", "headline", "read_triage", "write_triage"]
