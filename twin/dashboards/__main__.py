"""``python -m twin.dashboards [--check]``: write (or check) ``dashboards/*.json``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from twin.dashboards.boards import Context, build_all, render

DEFAULT_SCENARIO = Path("scenarios/cigre_mv_day.yaml")
DEFAULT_OUT = Path("dashboards")

def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m twin.dashboards", description=__doc__.split(
        "\n")[0])
    ap.add_argument("--scenario", type=Path, default=DEFAULT_SCENARIO,
                    help="scenario whose grid, band, step and day the dashboards use")
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT, help="folder of the JSON files")
    ap.add_argument("--check", action="store_true",
                    help="write nothing; exit 1 if a file differs from what would be written")
    args = ap.parse_args(argv)
    ctx = Context.from_scenario(args.scenario)
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
