"""The section on the scenario's expectations: expected against actual, from
``expectations.json`` (present only when the scenario has expectations)."""

from __future__ import annotations

from twin.evaluation.expectations import read_expectations
from twin.report.figures import Section
from twin.report.formatting import esc
from twin.report.run_data import RunData

_MARKS = {True: '<td style="color:#2ca02c;font-weight:600">✓ pass</td>',
          False: '<td style="color:#d62728;font-weight:600">✗ fail</td>'}


def expectations_section(run: RunData) -> Section | None:
    """A pass/fail table (check, kind, expected, actual), failures first in the summary."""
    report = read_expectations(run.run_dir)
    if report is None:
        return None
    results = [r for r in report["results"] if isinstance(r, dict)]
    n_failed = sum(not r.get("passed") for r in results)
    summary = (f"All {len(results)} expectations passed." if not n_failed else
               f"{n_failed} of {len(results)} expectations failed.")
    rows = "".join(
        "<tr>" + _MARKS[bool(r.get("passed"))]
        + "".join(f"<td>{esc(r.get(key, ''))}</td>"
                  for key in ("name", "kind", "expected", "actual")) + "</tr>"
        for r in results)
    head = "".join(f"<th>{h}</th>" for h in ("result", "expectation", "kind", "expected",
                                             "actual"))
    note = ('<p class="note">Times are since the scenario\'s start (hh:mm:ss); the '
            "scenario's <code>expectations</code> section says what is checked.</p>")
    body = (f"<p><strong>{esc(summary)}</strong></p>{note}"
            f'<div class="wide"><table class="log"><thead><tr>{head}</tr></thead>'
            f"<tbody>{rows}</tbody></table></div>")
    return Section("expectations", "Expectations", body)
