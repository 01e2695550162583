"""`rnnscope try RUN` (SPEC 13): try the triage's advice beside a control and say what helped.

    plan.py     the forks: one per distinct next step (the capacity tests for a healthy or
                plateaued run), --also, --only; their start (checkpoint or scratch); controls
    command.py  --cmd TEMPLATE: the user's own program for runs rnnscope cannot fork
    run.py      the forks on the sweep machinery, then try.json and the page
    verdict.py  each fork against its control at matched steps and wall-clock, the noise band
    words.py    one sentence per fork, the table, the advice
    page.py     RUN/try/report.html: the forks' curves over the control's
"""

from .plan import TRY, make_plan
from .run import TRY_JSON, run_trial
from .words import format_trial

__all__ = ["TRY", "TRY_JSON", "format_trial", "make_plan", "run_trial"]
