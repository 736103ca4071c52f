"""``python -m twin.dashboards [--check]``: write (or check) ``dashboards/*.json``.

The committed files come from the default scenario. ``--scenario``, ``--set`` and ``--until``
take what ``twin run`` takes, so that the dashboards of another run open on its time range
(docker/twin-live.sh does this for the compose stack)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from twin.dashboards.boards import Context, build_all, render

DEFAULT_SCENARIO = Path("scenarios/cigre_mv_day.yaml")
DEFAULT_OUT = Path("dashboards")


def _context(scenario: Path, overrides: list[str] | None, until: str | None) -> Context:
    """The dashboards' context, with ``--until`` checked the way ``twin run`` checks it.

    Raises ScenarioError (bad scenario, override or duration)."""
    from twin.scenario import ScenarioError, load_scenario
    from twin.timebase import parse_duration_s

    until_s = None
    if until is not None:
        try:
            until_s = parse_duration_s(until)
        except ValueError as exc:
            raise ScenarioError(f"--until: expected {exc}") from None
        duration = load_scenario(scenario, overrides).duration
        if until_s > duration:
            raise ScenarioError(f"--until: expected at most the scenario's duration "
                                f"({duration:g} s); found {until}")
    return Context.from_scenario(scenario, overrides, until_s)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m twin.dashboards", description=__doc__.split(
        "\n")[0])
    ap.add_argument("--scenario", type=Path, default=DEFAULT_SCENARIO,
                    help="scenario whose grid, band, step and time range the dashboards use")
    ap.add_argument("--set", dest="overrides", action="append", metavar="KEY=VALUE",
                    help="override a scenario key, as `twin run --set` does (repeatable)")
    ap.add_argument("--until", metavar="DURATION",
                    help="the range ends this long after the scenario's start, as a run "
                         "stopped with `twin run --until` does (e.g. 6h)")
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT, help="folder of the JSON files")
    ap.add_argument("--check", action="store_true",
                    help="write nothing; exit 1 if a file differs from what would be written")
    args = ap.parse_args(argv)
    from twin.scenario import ScenarioError

    try:
        ctx = _context(args.scenario, args.overrides, args.until)
    except ScenarioError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    stale = []
    for name, model in build_all(ctx).items():
        path = args.out / name
        content = render(model)
        if args.check:
            if not path.exists() or path.read_text(encoding="utf-8") != content:
                stale.append(str(path))
            continue
        args.out.mkdir(parents=True, exist_ok=True)
        path.write_text(content, encoding="utf-8")
        print(f"wrote {path}")
    if stale:
        print("out of date (run python -m twin.dashboards): " + ", ".join(stale),
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
