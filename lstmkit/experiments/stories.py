"""The Cliff story generator: English-like text in which a pet's species must be remembered.

A story introduces other people's pets and then mine ("anna has a cat named rex . i have a dog named
cliff ."), then exactly ``distance`` tokens of distractor sentences that mention no pet, then the
probe "however , cliff , my pet" whose answer is my pet's species. Pets in one story have different
names and different species, so the answer cannot be guessed from word frequencies: chance is
1 / number of species.

Everything is generated from a seeded ``random.Random``; no downloads.
"""
from __future__ import annotations

import random
from dataclasses import dataclass

from lstmkit.data.vocabulary import PAD, Vocabulary
from lstmkit.errors import UsageError

ALL_SPECIES = ["dog", "cat", "parrot", "rabbit", "hamster", "turtle", "goldfish", "pony"]
ALL_NAMES = ["cliff", "rex", "bella", "max", "luna", "milo", "daisy", "oscar", "coco", "ziggy",
             "pip", "nora"]
INTRO_OPENINGS = [["i", "have"], ["i", "adopted"], ["my", "family", "keeps"]]  # my pet
PROBE_PREFIX = ["however", ","]  # then the name, then ", my pet"

# Distractor vocabulary: people, places, things; none of them is a pet name or a species.
PEOPLE = ["anna", "tom", "sara", "ben", "julia", "peter", "maria", "sam", "grandma", "the teacher"]
PLACES = ["market", "park", "library", "station", "garden", "office", "beach", "kitchen"]
WEATHER = ["sunny", "cold", "windy", "rainy", "warm", "grey"]
FOODS = ["soup", "pasta", "bread", "apples", "rice", "cake"]
ADJECTIVES = ["long", "quiet", "busy", "strange", "lovely", "boring", "new", "old"]
TOPICS = ["history", "trains", "music", "the sea", "old castles", "cooking"]
VERBS = ["walked", "talked", "worked", "waited", "laughed", "sang"]

# Each template is a list of slots/words; a slot is filled with one entry of its list, and an
# entry may hold several words, so the length in tokens is known only after filling.
TEMPLATES = [
    "{person} went to the {place} .",
    "the weather was {weather} today .",
    "{person} and {person} {verb} in the {place} .",
    "yesterday it was {weather} and {weather} .",
    "we ate {food} for dinner .",
    "{person} likes to read {adj} books about {topic} .",
    "later , {person} said that the {place} was {adj} .",
    "the {place} was {adj} in the morning .",
    "{person} {verb} all afternoon .",
    "it was a {adj} day .",
    "it rained .",
    "okay then .",
    "yes .",
]
SLOTS = {"person": PEOPLE, "place": PLACES, "weather": WEATHER, "food": FOODS,
         "adj": ADJECTIVES, "topic": TOPICS, "verb": VERBS}


@dataclass(frozen=True)
class StoryConfig:
    species: int = 6          # how many species the stories draw from (chance = 1 / species)
    names: int = 10           # how many pet names
    pets_per_story: int = 2   # pets introduced per story: mine and other people's

    def validate(self) -> None:
        if not 2 <= self.species <= len(ALL_SPECIES):
            raise UsageError(f"--species must be between 2 and {len(ALL_SPECIES)}, got {self.species}")
        if not 2 <= self.names <= len(ALL_NAMES):
            raise UsageError(f"--names must be between 2 and {len(ALL_NAMES)}, got {self.names}")
        if not 1 <= self.pets_per_story <= min(self.species, self.names):
            raise UsageError(f"--pets must be between 1 and min(--species, --names) = "
                             f"{min(self.species, self.names)}, got {self.pets_per_story}")

    @property
    def chance(self) -> float:
        return 1.0 / self.species


def _all_words() -> list[str]:
    words = {"a", "named", "has", "however", ",", "my", "pet", "."}
    for opening in INTRO_OPENINGS:
        words.update(opening)
    for template in TEMPLATES:
        words.update(w for w in template.split() if not w.startswith("{"))
    for entries in SLOTS.values():
        for entry in entries:
            words.update(entry.split())
    words.update(ALL_SPECIES)
    words.update(ALL_NAMES)
    return sorted(words)


def story_vocabulary() -> Vocabulary:
    """Word <-> id over every word a story can hold; id 0 is padding. The word list is fixed, so
    ids never depend on the seed."""
    return Vocabulary([PAD] + _all_words(), pad=PAD)


def _fill(template: str, rng: random.Random) -> list[str]:
    tokens: list[str] = []
    for word in template.split():
        if word.startswith("{"):
            tokens.extend(rng.choice(SLOTS[word[1:-1]]).split())
        else:
            tokens.append(word)
    return tokens


def distractors(length: int, rng: random.Random) -> list[str]:
    """Exactly ``length`` tokens of whole pet-free sentences (a shortest sentence has 2 tokens)."""
    tokens: list[str] = []
    while len(tokens) < length:
        remaining = length - len(tokens)
        sentence = _fill(rng.choice(TEMPLATES), rng)
        # Accept a sentence that fits exactly or leaves room for at least one more (>= 2 tokens).
        if len(sentence) == remaining or len(sentence) <= remaining - 2:
            tokens.extend(sentence)
        elif remaining <= 3:
            # Close the gap with the shortest sentences (a distance of 1 gets a lone full stop).
            tokens.extend({1: ["."], 2: ["yes", "."], 3: ["it", "rained", "."]}[remaining])
    return tokens


@dataclass
class Story:
    tokens: list[str]
    answer: int        # index into the species list: the species of my pet
    mention: int       # token position of my pet's species word
    probe_start: int   # position of "however"


def make_story(distance: int, config: StoryConfig, rng: random.Random) -> Story:
    """One story whose probe sits ``distance`` tokens after the last introduction.

    Other people's pets come first ("anna has a cat named rex ."), then mine ("i have a dog named
    cliff ."), so the distance from my pet to the probe is set by ``distance`` alone. The probe
    names my pet; the other pets make guessing from the species that appeared a coin toss.
    (With mine in a random place a tanh RNN fails even at distance 0 in our budget: it cannot
    learn to keep one species while reading another, which would hide the effect of distance.)
    """
    if distance < 0:
        raise UsageError(f"distances must be >= 0 tokens, got {distance}")
    species = rng.sample(range(config.species), config.pets_per_story)  # species[0] is mine
    names = rng.sample(ALL_NAMES[:config.names], config.pets_per_story)
    owners = ["me"] + rng.sample(PEOPLE, config.pets_per_story - 1)
    order = list(range(1, config.pets_per_story)) + [0]  # mine last
    tokens: list[str] = []
    mentions = []
    for pet in order:
        opening = rng.choice(INTRO_OPENINGS) if pet == 0 else owners[pet].split() + ["has"]
        tokens += opening + ["a"]
        mentions.append(len(tokens))
        tokens += [ALL_SPECIES[species[pet]], "named", names[pet], "."]
    tokens += distractors(distance, rng)
    probe_start = len(tokens)
    tokens += PROBE_PREFIX + [names[0], ",", "my", "pet"]
    return Story(tokens, species[0], mentions[order.index(0)], probe_start)
