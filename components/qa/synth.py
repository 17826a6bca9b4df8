"""A learnable synthetic question-answering data set in the SQuAD JSON format.

Each passage is a shuffled list of facts "<Entity> has the <attribute> <value>." (each
attribute at most once per passage); each question asks "What is the <attribute> of
<entity>?" and its answer is the value, the word right after the matching fact's attribute.
Attributes and values come from closed lists, entities from the BERT vocab's plain
words (disjoint between train and eval), so every word is one WordPiece. Passages are
about 160-300 WordPiece tokens: longer than one window of a 128-token model, so the
sliding windows matter. With `unanswerable_fraction` > 0 the files are SQuAD v2.0 and
some questions ask for an attribute the passage does not state.
"""

from __future__ import annotations

import json
import logging
import math
import os
import random

# Attribute -> the closed set of its values (single common English words).
ATTRIBUTES: dict[str, tuple[str, ...]] = {
    "color": ("red", "blue", "green", "yellow", "black", "white", "purple", "orange", "brown"),
    "size": ("small", "large", "tiny", "huge", "medium", "giant"),
    "shape": ("round", "square", "flat", "narrow", "wide", "curved"),
    "country": ("france", "spain", "italy", "egypt", "china", "japan", "brazil", "canada",
                "india", "mexico", "peru", "chile"),
    "city": ("paris", "london", "berlin", "madrid", "rome", "tokyo", "cairo", "moscow",
             "vienna", "dublin", "oslo", "lima"),
    "sport": ("tennis", "football", "hockey", "golf", "rugby", "cricket", "boxing", "baseball"),
    "animal": ("horse", "tiger", "eagle", "wolf", "bear", "fox", "lion", "shark", "snake",
               "rabbit"),
    "food": ("bread", "rice", "cheese", "soup", "pasta", "fish", "apple", "honey", "butter"),
    "metal": ("gold", "silver", "iron", "copper", "steel", "tin", "zinc"),
    "instrument": ("piano", "guitar", "violin", "drum", "flute", "trumpet", "harp"),
    "season": ("spring", "summer", "autumn", "winter"),
    "day": ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"),
    "month": ("january", "february", "march", "april", "june", "july", "august",
              "september", "october", "november", "december"),
    "language": ("english", "french", "german", "spanish", "latin", "greek", "arabic",
                 "russian"),
    "planet": ("mars", "venus", "jupiter", "saturn", "mercury", "earth"),
    "element": ("hydrogen", "oxygen", "carbon", "nitrogen", "helium"),
    "tree": ("oak", "pine", "maple", "birch", "cedar", "palm", "willow"),
    "flower": ("rose", "lily", "daisy", "orchid", "ivy"),
    "weather": ("rain", "snow", "fog", "wind", "storm", "sunshine"),
    "fabric": ("cotton", "wool", "silk", "leather", "linen"),
    "gem": ("ruby", "diamond", "emerald", "pearl", "jade", "sapphire"),
    "drink": ("tea", "coffee", "milk", "water", "wine", "beer", "juice"),
    "bird": ("crow", "owl", "parrot", "swan", "duck", "hawk", "robin"),
    "vehicle": ("car", "bus", "train", "truck", "bicycle", "boat", "ship", "plane"),
    "job": ("doctor", "teacher", "farmer", "lawyer", "pilot", "baker", "soldier"),
    "direction": ("north", "south", "east", "west"),
    "mood": ("happy", "sad", "angry", "calm", "proud"),
    "taste": ("sweet", "sour", "bitter", "salty", "spicy"),
    "texture": ("soft", "hard", "smooth", "rough"),
    "material": ("wood", "glass", "stone", "paper", "plastic", "clay"),
    "music": ("jazz", "rock", "blues", "opera", "folk", "pop"),
    "hobby": ("chess", "painting", "fishing", "reading", "dancing", "singing", "hiking"),
    "number": ("two", "three", "four", "five", "six", "seven", "eight", "nine", "ten"),
    "age": ("young", "old", "ancient", "modern"),
    "height": ("tall", "short"),
    "mineral": ("salt", "quartz", "granite", "marble", "coal"),
}
# The BERT uncased vocab shipped with the package (encoders.DEFAULT_VOCAB_PATH, named here
# so that synth needs no TensorFlow).
BERT_VOCAB_PATH = os.path.join(os.path.dirname(os.path.abspath(__file__)), "assets", "vocab.txt")
# The value right after its attribute: MobileBERT's trigram embedding sees both at once.
FACT_TEMPLATE = "{entity} has the {attribute} {value}."
QUESTION_TEMPLATE = "What is the {attribute} of {entity}?"
MIN_FACTS, MAX_FACTS = 22, 32  # 7 WordPiece tokens a fact: 154-224 tokens a passage.
ENTITIES_PER_PASSAGE = (4, 8)
_STOP_WORDS = {"what", "the", "of", "is", "this", "that", "with", "from", "have", "were"}


def entity_words(vocab_path: str = BERT_VOCAB_PATH) -> list[str]:
    """The vocab's plain words (4-10 ASCII letters) that are no attribute, value or stop word."""
    taken = set(ATTRIBUTES) | {v for values in ATTRIBUTES.values() for v in values} | _STOP_WORDS
    with open(vocab_path, encoding="utf-8") as f:
        words = {line.strip() for line in f}
    return sorted(
        w for w in words
        if 4 <= len(w) <= 10 and w.isascii() and w.isalpha() and w.islower() and w not in taken
    )


def make_synthetic_squad(
    out_dir: str,
    n: int = 2000,
    seed: int = 0,
    eval_fraction: float = 0.1,
    unanswerable_fraction: float = 0.0,
    questions_per_passage: int = 4,
    vocab_path: str = BERT_VOCAB_PATH,
    facts_per_passage: tuple[int, int] = (MIN_FACTS, MAX_FACTS),
) -> dict[str, str]:
    """Writes `train/train.json` and `eval/eval.json` (held-out passages) under `out_dir`.

    `n` is the number of questions in all, `eval_fraction` the share of passages held out,
    `unanswerable_fraction` the share of unanswerable questions (SQuAD v2.0 if > 0),
    `facts_per_passage` the (least, most) facts of a passage (about 7 tokens each).
    The same arguments give the same files. Returns {'train': path, 'eval': path}.
    """
    if n < 2:
        raise ValueError(f"n={n} must be >= 2 (one train and one eval question at least)")
    if not 0.0 < eval_fraction < 1.0:
        raise ValueError(f"eval_fraction={eval_fraction} must be in (0, 1)")
    if not 0.0 <= unanswerable_fraction < 1.0:
        raise ValueError(f"unanswerable_fraction={unanswerable_fraction} must be in [0, 1)")
    if questions_per_passage < 1:
        raise ValueError(f"questions_per_passage={questions_per_passage} must be >= 1")
    if not 1 <= facts_per_passage[0] <= facts_per_passage[1] <= len(ATTRIBUTES):
        raise ValueError(f"facts_per_passage={facts_per_passage} must be (least, most) with "
                         f"1 <= least <= most <= {len(ATTRIBUTES)}")
    paths = {split: os.path.join(out_dir, split, f"{split}.json") for split in ("train", "eval")}
    for path in paths.values():
        if os.path.exists(path):
            raise FileExistsError(f"{path!r} exists; choose a new --out directory")

    rng = random.Random(seed)
    entities = entity_words(vocab_path)
    rng.shuffle(entities)
    num_passages = max(2, math.ceil(n / questions_per_passage))
    num_eval = min(num_passages - 1, max(1, round(num_passages * eval_fraction)))
    cut = round(len(entities) * num_eval / num_passages)
    version = "v2.0" if unanswerable_fraction > 0 else "1.1"
    split_sizes = {"train": num_passages - num_eval, "eval": num_eval}
    split_entities = {"train": entities[cut:], "eval": entities[:cut]}
    question_counts = _split_question_counts(n, split_sizes, questions_per_passage)
    for split, path in paths.items():
        paragraphs = [
            _paragraph(rng, split_entities[split], f"{split}-{i:05d}", count,
                       unanswerable_fraction, facts_per_passage)
            for i, count in enumerate(question_counts[split])
        ]
        data = [{"title": f"Synthetic facts {split}", "paragraphs": paragraphs}]
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w", encoding="utf-8") as f:
            json.dump({"version": version, "data": data}, f, ensure_ascii=False)
        logging.info(
            "Wrote %d passages, %d questions to %s", len(paragraphs),
            sum(len(p["qas"]) for p in paragraphs), path,
        )
    return paths


def _split_question_counts(
    n: int, split_sizes: dict[str, int], per_passage: int
) -> dict[str, list[int]]:
    """Questions per passage: `per_passage` each, the remainder trimmed from the last ones."""
    counts = [per_passage] * sum(split_sizes.values())
    excess = len(counts) * per_passage - n
    for i in range(len(counts) - 1, -1, -1):
        take = min(excess, counts[i] - 1)
        counts[i] -= take
        excess -= take
    num_train = split_sizes["train"]
    return {"train": counts[:num_train], "eval": counts[num_train:]}


def _paragraph(
    rng: random.Random, entity_pool: list[str], pid: str, num_questions: int,
    unanswerable_fraction: float, facts_per_passage: tuple[int, int],
) -> dict:
    attributes = rng.sample(sorted(ATTRIBUTES), rng.randint(*facts_per_passage))
    entities = rng.sample(entity_pool, rng.randint(*ENTITIES_PER_PASSAGE))
    facts = []  # (attribute, entity, value, answer_start)
    sentences = []
    offset = 0
    for attribute in attributes:
        entity, value = rng.choice(entities), rng.choice(ATTRIBUTES[attribute])
        sentence = FACT_TEMPLATE.format(entity=entity.capitalize(), attribute=attribute,
                                        value=value)
        facts.append((attribute, entity, value, offset + len(sentence) - len(value) - 1))
        sentences.append(sentence)
        offset += len(sentence) + 1
    context = " ".join(sentences)
    missing = sorted(set(ATTRIBUTES) - set(attributes))
    qas = []
    for q, (attribute, entity, value, start) in enumerate(
        rng.sample(facts, min(num_questions, len(facts)))
    ):
        qa = {"id": f"synth-{pid}-{q:02d}"}
        if unanswerable_fraction and rng.random() < unanswerable_fraction:
            qa["question"] = QUESTION_TEMPLATE.format(attribute=rng.choice(missing), entity=entity)
            qa.update(answers=[], is_impossible=True)
        else:
            qa["question"] = QUESTION_TEMPLATE.format(attribute=attribute, entity=entity)
            qa["answers"] = [{"text": value, "answer_start": start}]
            if unanswerable_fraction:
                qa["is_impossible"] = False
        qas.append(qa)
    return {"context": context, "qas": qas}
