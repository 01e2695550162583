"""Gradient checks (SPEC section 11): rnnscope's own backward passes against finite
differences, and a user's hand-written BPTT against rnnscope's, its mistake named.

    fd.py      float64 central finite differences of every parameter; the per-parameter table
    cases.py   the case a user's implementation answers (.npz, or a directory of .npy files)
    loop.py    the classic hand-written BPTT loop, its lines replaceable, per layer
    bugs.py    the catalogue of mistakes in it, and where each can sit
    naming.py  a user's answers against rnnscope and the catalogue: the verdict and evidence
    locate.py  where a mistake outside the catalogue enters, going back from the loss
"""

from .cases import read_case, write_case
from .fd import ParamCheck, check_gradients, check_model, format_checks
from .naming import format_bug_report, name_bug

__all__ = ["ParamCheck", "check_gradients", "check_model", "format_bug_report", "format_checks",
           "name_bug", "read_case", "write_case"]
