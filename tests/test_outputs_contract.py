"""Both stacks export exactly the documented output contract (components/outputs.py, README's table)."""

from __future__ import annotations

from components.outputs import DESCRIPTIONS
from tools.plan import Plan


def test_stack_exports_exactly_the_documented_outputs(any_plan: Plan) -> None:
    assert set(any_plan.outputs) == set(DESCRIPTIONS)


def test_no_output_is_empty(any_plan: Plan) -> None:
    assert [k for k, v in any_plan.outputs.items() if v in (None, "", [], {})] == []
