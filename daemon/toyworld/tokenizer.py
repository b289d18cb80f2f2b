"""The toy world's tokenizer: a CLIP BPE tokenizer whose vocabulary is the caption grammar's words.

Each word is one token. It is built from its characters by merges that join a character to the
word's already-merged ending (``e + d</w>``, then ``r + ed</w>``): every merge joins a single
character to a word ending, so a word of the grammar always comes out whole, and any other lowercase
text still tokenizes (as characters) instead of becoming unknown. Saved as ``vocab.json`` and
``merges.txt`` (with ``tokenizer_config.json`` and ``tokenizer.json``) in diffusers' layout, so
``CLIPTokenizer.from_pretrained`` loads it like SD 1.5's, 77 tokens long.
"""

from __future__ import annotations

import json
import string
from pathlib import Path

from transformers import CLIPTokenizer

CHARACTERS = string.ascii_lowercase + string.digits + ",.!?'-"


def word_merges(words: list[str]) -> tuple[dict[str, int], list[tuple[str, str]]]:
    """(vocabulary, merges) for ``words``: special tokens, single characters alone and word-final, then
    every word's endings in merge order."""
    vocab: dict[str, int] = {"<|startoftext|>": 0, "<|endoftext|>": 1}
    for character in CHARACTERS:
        vocab.setdefault(character, len(vocab))
        vocab.setdefault(character + "</w>", len(vocab))
    merges: list[tuple[str, str]] = []
    seen: set[tuple[str, str]] = set()
    for word in words:
        if not word or any(c not in CHARACTERS for c in word):
            raise ValueError(f"caption word {word!r} has characters outside {CHARACTERS!r}")
        ending = word[-1] + "</w>"
        for character in reversed(word[:-1]):
            pair = (character, ending)
            ending = character + ending
            if pair not in seen:
                seen.add(pair)
                merges.append(pair)
            vocab.setdefault(ending, len(vocab))
    return vocab, merges


def write_tokenizer(folder: Path, words: list[str], max_length: int = 77) -> CLIPTokenizer:
    """Write the tokenizer of ``words`` into ``folder`` and load it back from there."""
    folder.mkdir(parents=True, exist_ok=True)
    vocab, merges = word_merges(words)
    (folder / "vocab.json").write_text(json.dumps(vocab, indent=0, ensure_ascii=False) + "\n", encoding="utf-8")
    lines = ["#version: 0.2", *(f"{left} {right}" for left, right in merges)]
    (folder / "merges.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    loaded: CLIPTokenizer = CLIPTokenizer.from_pretrained(folder, model_max_length=max_length, local_files_only=True)
    loaded.save_pretrained(folder)  # adds tokenizer_config.json (model_max_length) and tokenizer.json
    return loaded
