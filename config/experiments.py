"""Config of experiments: a global holdout that gets no marketing, and experiments whose variants change settings."""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from .fields import doc, is_number

# The sections a variant may change: how messages are decided, ranked and worded, not where the job runs.
VARIANT_SECTIONS = frozenset({"policy", "scoring", "journeys", "feedback", "content"})


@dataclass(frozen=True)
class ExperimentsConfig:
    holdout_share: float = doc(0.05, "shoppers (by a salted hash of their id) who get no marketing: what would have "
                                     "been sent goes to the exposures topic instead, the control uplift is measured "
                                     "against; order statuses still go out")
    holdout_salt: str = doc("holdout-1", "salt of the holdout's hash; a new salt draws a new holdout")
    tests: Mapping = doc({}, "experiments by name: {salt: text, traffic: share of the shoppers outside the holdout "
                             "in it, variants: {name: {weight: number, overrides: {section: {key: value}}}}}; "
                             "a variant may override policy, scoring, journeys, feedback and content settings "
                             "(copy inline under content.templates, shaped as config/templates.yaml)")


def _variant_problems(where: str, variant) -> list[str]:
    if not isinstance(variant, Mapping) or set(variant) - {"weight", "overrides"}:
        return [f"{where} must be a mapping of weight and overrides"]
    weight, overrides = variant.get("weight", 1.0), variant.get("overrides", {})
    problems = [] if is_number(weight) and weight > 0 else [f"{where}.weight must be a number > 0"]
    if not isinstance(overrides, Mapping) or not all(isinstance(v, Mapping) for v in overrides.values()):
        return problems + [f"{where}.overrides must map sections to mappings of settings"]
    outside = sorted(set(overrides) - VARIANT_SECTIONS)
    problems += [f"{where}.overrides may not change {', '.join(outside)}"] if outside else []
    if "templates_file" in overrides.get("content", {}):
        problems.append(f"{where}.overrides gives its copy inline, under content.templates, not as a file")
    return problems


def experiment_problems(name, experiment) -> list[str]:
    """What is wrong with one experiment's definition (its overrides are checked against the config later)."""
    where = f"experiments.tests.{name}"
    if not isinstance(name, str) or not name or not isinstance(experiment, Mapping):
        return [f"{where} must be a named mapping"]
    unknown = sorted(set(experiment) - {"salt", "traffic", "variants"})
    problems = [f"{where} has unknown key(s) {', '.join(unknown)}"] if unknown else []
    if not isinstance(experiment.get("salt"), str) or not experiment.get("salt"):
        problems.append(f"{where}.salt must be a non-empty text (it keeps assignments apart across experiments)")
    traffic = experiment.get("traffic", 1.0)
    if not (is_number(traffic) and 0 < traffic <= 1):
        problems.append(f"{where}.traffic must be in (0, 1]")
    variants = experiment.get("variants")
    if not isinstance(variants, Mapping) or len(variants) < 2:
        return problems + [f"{where}.variants must name at least two variants (one may change nothing)"]
    for variant, body in variants.items():
        problems += _variant_problems(f"{where}.variants.{variant}", body)
    return problems


def experiments_checks(config) -> list[tuple[bool, str]]:
    """(holds, message) for the section, as JobConfig.validate wants them."""
    section = config.experiments
    problems = [problem for name, body in section.tests.items() for problem in experiment_problems(name, body)]
    return [(is_number(section.holdout_share) and 0 <= section.holdout_share <= 0.5,
             "experiments.holdout_share must be in [0, 0.5]"),
            (bool(section.holdout_salt), "experiments.holdout_salt must not be empty"),
            *((False, problem) for problem in problems)]
