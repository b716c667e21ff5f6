"""Example data: a seeded synthetic forced-displacement household survey and its plan."""

from pathlib import Path

from safemicro.examples.survey import generate_survey, write_example

SURVEY_PLAN = Path(__file__).with_name("survey_plan.yaml")
SURVEY_PUF_PLAN = Path(__file__).with_name("survey_plan_puf.yaml")
SURVEY_SWAP_PLAN = Path(__file__).with_name("survey_plan_swap.yaml")
SURVEY_TCLOSE_PLAN = Path(__file__).with_name("survey_plan_tclose.yaml")

__all__ = [
    "SURVEY_PLAN",
    "SURVEY_PUF_PLAN",
    "SURVEY_SWAP_PLAN",
    "SURVEY_TCLOSE_PLAN",
    "generate_survey",
    "write_example",
]
