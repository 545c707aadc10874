"""Runs of the CLI that tests share (``tests/`` is on sys.path, see conftest.py)."""

from __future__ import annotations


def evaluate_keeping_evaluator(argv: list[str]):
    """``rtplan-assist evaluate ...`` in this process; returns ``(exit code, the evaluator it
    built)`` so that tests can reuse the warm evaluator instead of evaluating again."""
    from rtplan_assist import cli_evaluate
    from rtplan_assist.cli import main

    built = {}
    original = cli_evaluate.build_evaluator

    def keep(args):
        built["evaluator"] = original(args)
        return built["evaluator"]

    cli_evaluate.build_evaluator = keep
    try:
        code = main(argv)
    finally:
        cli_evaluate.build_evaluator = original
    return code, built.get("evaluator")
