"""The pure-Python WordPiece tokeniser against the `tokenizers` library on the same vocabulary."""

from __future__ import annotations

import pytest
from tokenizers import Tokenizer

from ranking.evalset import load_items
from ranking.minilm import model_dir
from ranking.wordpiece import MAX_CACHED_CHARS, WordPiece


@pytest.fixture(scope="module")
def reference() -> Tokenizer:
    """MiniLM's own tokenizer, without padding, truncation or special tokens."""
    tokenizer = Tokenizer.from_file(str(model_dir() / "tokenizer.json"))
    tokenizer.no_padding()
    tokenizer.no_truncation()
    return tokenizer


def test_every_eval_text_gets_the_reference_tokens(reference: Tokenizer) -> None:
    wordpiece = WordPiece(reference.get_vocab())
    unknown = reference.token_to_id("[UNK]")
    texts = [c["text"] for item in load_items() for c in item.candidates]
    texts += [
        "Café naïve résumé 東京 hello_world foo-bar 3.14 don't e=mc^2 «quoted» 120 °C",
        "Zwölf Boxkämpfer jagen Viktor quer über den großen Sylter Deich.",
    ]
    for text in texts:
        expected = [i for i in reference.encode(text, add_special_tokens=False).ids if i != unknown]
        assert wordpiece.ids(text, 10**6) == expected, text


def test_ids_stop_at_the_limit_and_long_words_are_not_cached(reference: Tokenizer) -> None:
    wordpiece = WordPiece(reference.get_vocab())
    assert len(wordpiece.ids("one two three four five six", 4)) == 4
    made_up = "x" * (MAX_CACHED_CHARS + 1) + "qz"
    wordpiece.ids(f"{made_up} unbelievablyish", 100)
    assert wordpiece._cached.cache_info().currsize == 1  # "unbelievablyish" only
