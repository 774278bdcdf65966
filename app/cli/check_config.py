"""`mcp-gateway check-config FILE`: the start-up validation, on its own."""

from __future__ import annotations

import argparse
import sys

from app.config import ConfigError, parse_config, read_config_file


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    parser = sub.add_parser(
        "check-config", help="validate a configuration file", description="Validate a gateway configuration file; list every problem."
    )
    parser.add_argument("file")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    try:
        config = parse_config(read_config_file(args.file))
    except ConfigError as error:
        for problem in error.problems:
            print(f"{args.file}: {problem}", file=sys.stderr)
        print(f"{args.file}: {len(error.problems)} problem(s) found", file=sys.stderr)
        return 1
    backends = sum(len(ns.backends) for ns in config.namespaces.values())
    print(f"{args.file}: OK ({len(config.namespaces)} namespaces, {backends} backends)")
    return 0
