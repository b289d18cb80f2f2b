"""Prompts of any length for CLIP, encoded in chunks of 75 tokens as artists' tools do (A1111, ComfyUI).

CLIP's text encoder reads 77 positions: a start token, 75 content tokens and an end token, then
padding. A longer prompt is never cut: its content tokens are split into chunks of 75, each chunk is
encoded on its own as ``[BOS] + chunk + [EOS] + padding`` (77 tokens), and the chunks' embeddings are
concatenated along the token axis. The UNet's cross-attention takes keys of any length, so nothing
else changes. A prompt within 75 tokens is one chunk: exactly the embedding that encoding it truncated
to the tokenizer's length gave.

The two halves of the guidance batch must be equally long: the shorter of the prompt and the negative
prompt is padded with empty chunks (the embedding of ``""``, which is also what an empty negative
prompt encodes to). Past :data:`MAX_CHUNKS` chunks a prompt is refused (:class:`PromptTooLongError`
naming the field, its token count and the limit), before any model work.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from einops import rearrange

from .models import Models

MAX_CHUNKS = 8  # 600 tokens: far past what a prompt box holds; a shot's prompt is at most 4000 characters


class PromptTooLongError(ValueError):
    """A prompt has more tokens than :data:`MAX_CHUNKS` chunks hold."""


@dataclass(frozen=True)
class PromptEmbeddings:
    """prompt : (1, 77 k, dim) the prompt's own k chunks (the inversion's text, keyed by the prompt alone);
    conditional, unconditional : (1, 77 n, dim) the two halves of the guidance batch, each padded with
    empty chunks to n = the larger chunk count of the two (unconditional is None without guidance, and
    conditional is then the prompt's own). In the UNet's dtype, on its device."""

    prompt: torch.Tensor
    conditional: torch.Tensor
    unconditional: torch.Tensor | None


def chunk_length(models: Models) -> int:
    """Tokens per encoded chunk, start and end tokens included: the tokenizer's length (77 for CLIP),
    never more than the text encoder's positions."""
    positions = getattr(models.text_encoder.config, "max_position_embeddings", None)
    length = int(models.tokenizer.model_max_length)
    return min(length, int(positions)) if positions is not None else length


def token_chunks(
    tokenizer: Any, text: str, length: int, field: str = "prompt", max_chunks: int = MAX_CHUNKS
) -> list[list[int]]:
    """``text``'s content token ids (no start or end token) in chunks of ``length - 2``; ``[[]]`` for an
    empty text. Raises :class:`PromptTooLongError` past ``max_chunks`` chunks, naming ``field``."""
    content = length - 2
    if content < 1:
        raise ValueError(f"a chunk of {length} tokens has no room between its start and end tokens")
    ids = list(tokenizer(text, add_special_tokens=False, verbose=False).input_ids)
    limit = content * max_chunks
    if len(ids) > limit:
        raise PromptTooLongError(
            f"{field}: {len(ids)} tokens, more than the {limit} this model reads"
            f" ({max_chunks} chunks of {content}); shorten it"
        )
    return [ids[start : start + content] for start in range(0, len(ids), content)] or [[]]


def chunk_input_ids(tokenizer: Any, chunks: list[list[int]], length: int) -> torch.Tensor:
    """(chunks, length) long: each chunk as ``[BOS] + ids + [EOS]`` padded on the right with the
    tokenizer's pad token (its end token where it has none), as the tokenizer pads to its length."""
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    rows = []
    for ids in chunks:
        row = [tokenizer.bos_token_id, *ids, tokenizer.eos_token_id]
        rows.append(row + [pad] * (length - len(row)))
    return torch.tensor(rows, dtype=torch.long)


def check_prompt_lengths(models: Models, prompt: str, negative_prompt: str) -> None:
    """Raises :class:`PromptTooLongError` when either text has more tokens than the model reads."""
    length = chunk_length(models)
    token_chunks(models.tokenizer, prompt, length, "prompt")
    token_chunks(models.tokenizer, negative_prompt, length, "negative_prompt")


def _encode_chunks(models: Models, chunks: list[list[int]]) -> torch.Tensor:
    """(1, 77 len(chunks), dim): the chunks through the text encoder as one batch, joined end to end."""
    encoder = models.text_encoder
    input_ids = chunk_input_ids(models.tokenizer, chunks, chunk_length(models)).to(encoder.device)
    with torch.no_grad():
        embeds: torch.Tensor = encoder(input_ids)[0]
    joined = rearrange(embeds, "k n d -> 1 (k n) d")
    return joined.to(device=models.device, dtype=models.dtype)


def encode_prompt(models: Models, text: str, field: str = "prompt") -> torch.Tensor:
    """(1, 77 k, dim) the embedding of ``text``'s k chunks, in the UNet's dtype, on its device."""
    return _encode_chunks(models, token_chunks(models.tokenizer, text, chunk_length(models), field))


def _padded(embeds: torch.Tensor, empty: torch.Tensor, chunks: int) -> torch.Tensor:
    """``embeds`` followed by as many ``empty`` chunks as make it ``chunks`` chunks long."""
    missing = chunks - embeds.shape[1] // empty.shape[1]
    return torch.cat([embeds, *[empty] * missing], dim=1) if missing > 0 else embeds


def encode_prompts(models: Models, prompt: str, negative_prompt: str | None) -> PromptEmbeddings:
    """The prompt's embedding and the guidance batch's two halves (``negative_prompt`` None: no guidance)."""
    own = encode_prompt(models, prompt, "prompt")
    if negative_prompt is None:
        return PromptEmbeddings(own, own, None)
    negative = encode_prompt(models, negative_prompt, "negative_prompt")
    if own.shape[1] == negative.shape[1]:
        return PromptEmbeddings(own, own, negative)
    length = chunk_length(models)
    chunks = max(own.shape[1], negative.shape[1]) // length
    empty = encode_prompt(models, "")
    return PromptEmbeddings(own, _padded(own, empty, chunks), _padded(negative, empty, chunks))
