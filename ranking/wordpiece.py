"""BERT's uncased WordPiece tokenisation in plain Python, with a cache of whole words.

Replies and prompts are mostly common words, each of which is one vocabulary entry; a dict
lookup per word beats a call into a tokenizer library for short texts. Words the cache has
not seen are split greedily into the longest vocabulary pieces (`##` continues a word), as
BERT's WordPiece does. Only words up to MAX_CACHED_CHARS characters are cached, so clients
cannot grow the cache with long made-up words.
"""

from __future__ import annotations

import re
import string
import unicodedata
from collections.abc import Mapping
from functools import lru_cache

# BERT's BasicTokenizer: words split at white space, each punctuation character on its own
# (ASCII punctuation here; Unicode punctuation and CJK characters in `_split_unicode`).
_PUNCT = re.escape(string.punctuation)
_PIECES = re.compile(rf"[^\s{_PUNCT}]+|[{_PUNCT}]")
MAX_WORD_CHARS = 100  # BERT's limit; a longer word is [UNK]
MAX_CACHED_CHARS = 24
CACHED_WORDS = 16384


def normalise(text: str) -> str:
    """Lower case without accents, as the uncased BERT models see text."""
    text = text.lower()
    if text.isascii():
        return text
    decomposed = unicodedata.normalize("NFD", text)
    return "".join(c for c in decomposed if unicodedata.category(c) != "Mn")


class WordPiece:
    """Token ids of texts, for an uncased BERT vocabulary; special tokens are never added."""

    def __init__(self, vocab: Mapping[str, int]) -> None:
        self.vocab = dict(vocab)
        self._cached = lru_cache(maxsize=CACHED_WORDS)(self._split)

    def ids(self, text: str, limit: int) -> list[int]:
        """The first `limit` token ids of `text` (unknown words are left out)."""
        out: list[int] = []
        vocab = self.vocab
        for word in self._words(normalise(text)):
            hit = vocab.get(word)
            if hit is not None:
                out.append(hit)
            elif len(word) <= MAX_CACHED_CHARS:
                out.extend(self._cached(word))
            else:
                out.extend(self._split(word))
            if len(out) >= limit:
                return out[:limit]
        return out

    @staticmethod
    def _words(text: str) -> list[str]:
        """BERT's basic tokens of normalised text."""
        words = _PIECES.findall(text)
        if text.isascii():
            return words
        return [piece for word in words for piece in _split_unicode(word)]

    def _split(self, word: str) -> tuple[int, ...]:
        """Greedy longest-match WordPiece; no pieces for a word that cannot be split."""
        if len(word) > MAX_WORD_CHARS:
            return ()
        pieces: list[int] = []
        start = 0
        while start < len(word):
            end = len(word)
            found = None
            while start < end:
                piece = word[start:end] if start == 0 else "##" + word[start:end]
                found = self.vocab.get(piece)
                if found is not None:
                    break
                end -= 1
            if found is None:
                return ()
            pieces.append(found)
            start = end
        return tuple(pieces)


def _split_unicode(word: str) -> list[str]:
    """A word split around Unicode punctuation and CJK ideographs, each its own token."""
    if word.isascii():
        return [word]
    pieces: list[str] = []
    current = ""
    for char in word:
        if unicodedata.category(char).startswith("P") or _is_cjk(ord(char)):
            if current:
                pieces.append(current)
            pieces.append(char)
            current = ""
        elif unicodedata.category(char)[0] != "C":  # control characters are dropped
            current += char
    if current:
        pieces.append(current)
    return pieces


def _is_cjk(code: int) -> bool:
    """BERT's CJK ideograph ranges."""
    return (
        0x4E00 <= code <= 0x9FFF
        or 0x3400 <= code <= 0x4DBF
        or 0x20000 <= code <= 0x2A6DF
        or 0x2A700 <= code <= 0x2CEAF
        or 0xF900 <= code <= 0xFAFF
        or 0x2F800 <= code <= 0x2FA1F
    )
