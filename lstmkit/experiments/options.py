"""The settings of `lstmkit demo` and `lstmkit experiment`, with their flags and checks."""
from __future__ import annotations

import time
from dataclasses import dataclass

import torch

from lstmkit.experiments.common import RunContext
from lstmkit.recipe import at_least, option, section


def _non_negative(values) -> str | None:
    return None if values is None or min(values) >= 0 else "must be >= 0 tokens"


@dataclass
class RunOptions:
    out: str | None = option(None, "folder for metrics.json, the PNG plots and report.html",
                             metavar="DIR", default_text="runs/<command>-<date>-<time>")
    seed: int = option(0, "seed for data and weights", check=at_least(0))
    quick: bool = option(False, "tiny models and a few steps: a smoke test in seconds, not a result")
    # One thread by default: these models are small (hidden 64), and on a shared machine a second
    # thread waits on the first more than it helps (docs/demo.md has the measurements).
    threads: int = option(1, "torch CPU threads (one is fastest for these small models on a busy "
                          "machine)", check=at_least(1))
    progress: bool = option(True, "progress bars")


@dataclass
class StoryOptions:
    distances: tuple[int, ...] | None = option(None, "distractor tokens between the pets and the probe",
                                               metavar="D,D,...", check=_non_negative,
                                               default_text="0,2,5,10,20,50,100,200")
    species: int | None = option(None, "species to draw from, 2-8 (chance = 1/species)",
                                 default_text="6", check=at_least(1))
    names: int | None = option(None, "pet names to draw from, 2-12", default_text="10",
                               check=at_least(1))
    pets: int | None = option(None, "pets per story, mine and other people's", default_text="2",
                              check=at_least(1))


@dataclass
class DemoRecipe:
    run: RunOptions = section(RunOptions, "run")
    stories: StoryOptions = section(StoryOptions, "Cliff stories (cliff, gradients, gates)")


@dataclass
class ChosenExperiments:
    experiments: tuple[str, ...] = option((), "the experiments to run", nargs="+", metavar="NAME")
    lengths: tuple[int, ...] | None = option(None, "sequence lengths for adding or copy blanks",
                                             metavar="T,T,...",
                                             default_text="adding 50,100,200; copy 10,20,40")


@dataclass
class ExperimentRecipe:
    chosen: ChosenExperiments = section(ChosenExperiments, "experiments")
    run: RunOptions = section(RunOptions, "run")
    stories: StoryOptions = section(StoryOptions, "Cliff stories (cliff, gradients, gates)")


def context_from(run: RunOptions, stories: StoryOptions) -> RunContext:
    """The experiments' shared settings; configures torch's threads."""
    torch.set_num_threads(run.threads)
    context = RunContext(seed=run.seed, quick=run.quick, show_progress=run.progress)
    context.cliff_options = {"distances": list(stories.distances) if stories.distances else None,
                             "species": stories.species, "names": stories.names,
                             "pets": stories.pets}
    return context


def default_out(command: str) -> str:
    return f"runs/{command}-{time.strftime('%Y%m%d-%H%M%S')}"
