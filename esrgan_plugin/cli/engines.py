"""``esrgan engines``: every engine, what it runs, whether it is installed, and ``auto``'s order."""

from __future__ import annotations

import argparse
import json


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``engines`` to the ``esrgan`` subcommands."""
    engines = sub.add_parser("engines", help="list the engines that can run a model")
    engines.add_argument("--json", action="store_true", help="print a JSON list")
    engines.set_defaults(func=cmd_engines)


def cmd_engines(args: argparse.Namespace) -> int:
    from esrgan_plugin.engines.registry import describe_engines

    rows = describe_engines()
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    for row in rows:
        rank = f"auto tries it #{row['auto_rank']}" if row["auto_rank"] else "not tried by auto"
        by_precision: dict[str, int] = row["auto_rank_by_precision"]  # type: ignore[assignment]
        if by_precision:
            rank += " (" + ", ".join(f"#{n} in {p}" for p, n in by_precision.items()) + ")"
        unavailable: dict[str, str] = row["unavailable"]  # type: ignore[assignment]
        state = "installed" if row["installed"] else "not installed"
        print(f"{row['name']}: {state}; {rank}")
        for runs in row["runs"]:  # type: ignore[attr-defined]
            archs = runs["architectures"]
            print(f"  {runs['device']}: {', '.join(runs['precisions'])} ({archs} models)")
        for precision, reason in unavailable.items():
            print(f"  not here in {precision}: {reason}")
        print(f"  {row['description']}")
    return 0
