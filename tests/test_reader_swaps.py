"""Synthetic unanswerable questions (rag/reader/swaps.py) and their place in the training data."""

from __future__ import annotations

import random
from pathlib import Path

from rag.reader.data import load_articles, make_examples, split_by_title
from rag.reader.swaps import article_entities, swap_question

ARTICLE = [
    "Meanwhile the port grew. In 1821 Mira Tolan founded Port Vessa on the northern coast.",
    "Traders from Quenby and Lindt Harbour came in 1764, and later in 1902 with 3,600 men.",
    "Mr. Fenn wrote that Port Vessa exported copper.",
]


def test_entities_are_names_years_and_numbers_not_sentence_openers() -> None:
    found = article_entities(ARTICLE)
    assert found["year"] == ["1821", "1764", "1902"]
    assert found["number"] == ["3,600"]
    assert {"Mira Tolan", "Port Vessa", "Quenby", "Lindt Harbour"} <= set(found["name"])
    # capitalised only where a sentence starts, or an abbreviation: not names
    assert not {"Meanwhile", "Traders", "Mr", "In"} & set(found["name"])


def test_a_swap_replaces_what_the_window_states_with_what_it_does_not() -> None:
    found = article_entities(ARTICLE)
    window = ARTICLE[0]
    for seed in range(20):
        q = "Who founded Port Vessa in 1821?"
        new = swap_question(q, window, found, random.Random(seed))
        assert new is not None and new != q and new.startswith("Who ")
        assert swap_question(q, window, found, random.Random(seed)) == new  # seeded
        changed = set(new.rstrip("?").split(" ")) - set(q.rstrip("?").split(" "))
        assert changed and not any(w.lower() in window.lower() for w in changed)
        if "1821" not in new:  # a year for a year
            assert any(y in new for y in ("1764", "1902"))
        else:  # a two-word name for a two-word name ("Lindt Harbour", "Mira Tolan" is in it)
            assert "Lindt Harbour" in new
    # nothing of the question in the window, or only its first word: nothing to swap
    assert swap_question("What did traders sell?", window, found, random.Random(0)) is None
    assert swap_question("Meanwhile what grew?", ARTICLE[0], found, random.Random(0)) is None


def test_training_data_gains_swapped_questions_validation_none(tmp_path: Path) -> None:
    from tests.test_reader import _squad

    train, val = split_by_title(load_articles(_squad(tmp_path / "tiny.json")), 1)
    plain = make_examples(train, seed=1)
    more = make_examples(train, seed=1, swapped=1.0)
    swapped = [e for e in more if e.kind == "swapped"]
    assert swapped and all(e.answer is None and not e.answers for e in swapped)
    answer_windows = {e.context for e in more if e.kind == "answer"}
    originals = {e.question for e in more if e.kind == "answer"}
    for e in swapped:
        assert e.context in answer_windows and e.question not in originals
    assert sum(e.kind == "answer" for e in more) == sum(e.kind == "answer" for e in plain)
    assert not [e for e in make_examples(val, seed=None, swapped=1.0) if e.kind == "swapped"]
