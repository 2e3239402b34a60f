"""`flightdeck monitor-report`: Evidently's HTML drift report of a monitored day, rendered on demand.

Imported by the CLI at start-up, so only argparse at the top; the store and Evidently load when it runs.
The rendering itself (from the rows the monitor compared, checked equal to its numbers):
components.monitoring.render.
"""

from __future__ import annotations

import argparse
import json


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--date", required=True, help="the monitored day (YYYY-MM-DD): `flightdeck monitor` has run "
                                                      "for it")
    parser.add_argument("--force", action="store_true", help="draw the report again even if one of the day's "
                                                             "current monitoring results is published")
    parser.add_argument("--out", default="", help="also write the HTML to this local file")
    parser.add_argument("--backtest", default="", metavar="ID", help="a day of a backtest's drift policy "
                        "(backtests/<ID>/policies/<policy>/) instead of the platform's own monitoring")
    parser.add_argument("--policy", default="drift", help="with --backtest: the policy whose monitoring to read "
                                                          "(default: drift, the only one that monitors)")


def run(args: argparse.Namespace) -> int:
    from components.core.store import open_store
    from components.monitoring.render import render_report

    store = open_store()
    if args.backtest:
        store = backtest_store(store, args.backtest, args.policy)
    result = render_report(args.date, store, force=args.force, out=args.out)
    print(json.dumps(result, indent=2, sort_keys=True))
    return 0


def backtest_store(base, backtest_id: str, policy: str):
    """The namespace one policy of a backtest monitored in (components.backtest.store)."""
    from components.backtest.run import ROOT
    from components.backtest.store import NamespacedStore
    from components.contracts.errors import StageFailed

    root = f"{ROOT}/{backtest_id}"
    if not base.exists(f"{root}/progress.json"):
        raise StageFailed(f"no backtest {backtest_id!r} at {base.uri(root)} (the id is printed by `flightdeck "
                          "backtest` and names the folder under backtests/)")
    return NamespacedStore(base, f"{root}/policies/{policy}")
