"""The trial in words: one sentence per fork, the table, what became of each finding's advice."""

from __future__ import annotations

HEAD = {"helped": "helped", "hurt": "hurt", "no_measurable_difference":
        "made no measurable difference", "failed": "failed"}
BY = {"steps": "at matched steps", "wall_clock": "at matched wall-clock"}


def nll(v) -> str:
    return "-" if v is None else f"{v:.3f}"


def point(m: dict, measure: str) -> str:
    """Where a comparison was matched: step 400 / 2.1 minutes / 45 s (since the start)."""
    if measure == "steps":
        return f"step {m['at']}"
    return f"{m['at']:.0f} s" if m["at"] < 120 else f"{m['at'] / 60:.1f} minutes"


def matched_words(m: dict, measure: str) -> str:
    """eval 1.620 against the control's 1.710 by step 400 (noise band ±0.020)"""
    if m["diff"] is None:
        return f"no eval of both to compare {BY[measure]}"
    return (f"eval {nll(m['fork'])} against the control's {nll(m['control'])} by "
            f"{point(m, measure)} (noise band ±{m['band']:.3f})")


def quoted(text: str) -> str:
    """A step's words in backticks, unless they already quote code (a PyTorch call)."""
    return text if "`" in text else f"`{text}`"


def sentence(f: dict, measure: str) -> str:
    """`--lr 0.0035` helped: eval 1.62 against the control's 1.71 by step 400 (noise band
    ±0.02), ...; saturation gone."""
    text = f"{quoted(f['text'])} {HEAD[f['verdict']]}"
    if f["verdict"] == "failed":
        return f"{text}: {f['error'] or f['status']}"
    other = "wall_clock" if measure == "steps" else "steps"
    parts = [matched_words(f[f"{m}_matched"], m) for m in (measure, other)]
    if f["control_diverged"] and not f["diverged"]:
        why = f" ({f['control_error']})" if f["control_error"] else ""
        parts.insert(0, f"the control diverged{why} and this fork did not")
    elif f["control_status"] == "failed":
        parts.insert(0, f"the control failed ({f['control_error']})")
    if f["finding_gone"] is not None:
        control = "" if f["finding_gone_in_control"] is None else \
            f", {'gone' if f['finding_gone_in_control'] else 'still there'} in the control's"
        parts.append(f"{f['finding']} {'gone' if f['finding_gone'] else 'still there'} in "
                     f"its own triage{control}")
    return f"{text}: {'; '.join(parts)}."


def paid_off(doc: dict, measure: str) -> str:
    """helped at matched steps: `--hidden 512`, `--cell gru` (or none)."""
    helped = [quoted(f["text"]) for f in doc["forks"] if f["status"] == "finished"
              and f[f"{measure}_matched"]["verdict"] == "helped"]
    return f"helped {BY[measure]}: {', '.join(helped) or 'none'}"


def cell(m: dict) -> str:
    if m["diff"] is None:
        return "-"
    return f"{nll(m['fork'])} vs {nll(m['control'])} ±{m['band']:.3f}"


def format_table(doc: dict) -> str:
    """The forks as a table: start, status, both comparisons, the finding, the verdict."""
    head = ["fork", "start", "status", "matched steps", "matched wall-clock", "finding",
            "verdict"]
    rows = [[f["name"], f["start"], f["status"], cell(f["steps_matched"]),
             cell(f["wall_clock_matched"]), finding_cell(f), f["verdict"]]
            for f in doc["forks"]]
    rows += [[c["name"], c["start"], c["status"], nll(c["best_eval_nll"]), "", c["role"], ""]
             for c in doc["controls"]]
    widths = [max(len(x) for x in col) for col in zip(head, *rows, strict=True)]
    return "\n".join("  ".join(x.ljust(w) for x, w in zip(row, widths, strict=True)).rstrip()
                     for row in [head, *rows])


def finding_cell(f: dict) -> str:
    if f["finding"] is None:
        return "yours"
    if f["finding_gone"] is None:
        return f["finding"]
    return f"{f['finding']} {'gone' if f['finding_gone'] else 'stays'}"


def advice_line(a: dict) -> str:
    """saturation: its first next step `--lr 0.0005` helped / did not beat the control (...)."""
    if a["first"] is None:
        return f"{a['id']}: no next step to try"
    first = f"{a['id']}: its first next step {quoted(a['first'])}"
    if a["first_verdict"] == "not_tried":
        words = f"{first} was not tried"
    elif a["first_beat_control"]:
        words = f"{first} beat the control"
    else:
        words = f"{first} did not beat the control ({a['first_verdict'].replace('_', ' ')})"
    others = [t for t in a["helped"] if t != a["first"]]
    return words + (f"; {', '.join(map(quoted, others))} did" if others else "")


def format_trial(doc: dict) -> str:
    """The whole trial as text: the table, one sentence per fork, the advice, what was not
    tried, how the noise was measured."""
    budget = ", ".join(f"--{k} {v:g}" for k, v in doc["budget"].items()) or "your program's own"
    lines = [f"try {doc['run']} (verdict {doc['verdict']}; budget {budget}; verdicts "
             f"{BY[doc['measure']]})", "", format_table(doc), ""]
    lines += [sentence(f, doc["measure"]) for f in doc["forks"]]
    lines += [paid_off(doc, m) for m in BY]
    lines += [""] + [advice_line(a) for a in doc["findings"]] if doc["findings"] else []
    lines += [f"not tried: {quoted(s['text'])} {s['why']}" for s in doc["skipped"]]
    how = "; ".join(f"{start}: {how}" for start, how in doc["noise"]["how"].items())
    lines.append(f"noise band: {doc['noise']['k']:g} x the distance between the two controls "
                 f"at the same point, at least {doc['noise']['min_band']:g} ({how})")
    return "\n".join(lines)
