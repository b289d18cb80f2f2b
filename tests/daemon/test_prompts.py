"""Prompts past CLIP's 77 tokens are split into chunks of 75 as artists' tools do, never silently cut
(issue 20, item 7); a prompt within 75 tokens gives exactly the embedding it always gave.

The tiny model's tokenizer (``models.byte_tokenizer``) makes one token per character (spaces fall
between words), so ``"x" * n`` is ``n`` tokens."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from transformers import CLIPTokenizer

from anyi2v.cli import main
from anyi2v.daemon.client import DaemonClient
from anyi2v.daemon.pipeline.generate import InputError, generate
from anyi2v.daemon.pipeline.models import Models, byte_tokenizer, random_models
from anyi2v.daemon.pipeline.prompts import (
    MAX_CHUNKS,
    PromptTooLongError,
    encode_prompt,
    encode_prompts,
    token_chunks,
)
from anyi2v.daemon.toyworld.scenes import MODALITY_PHRASES, sample_scene
from anyi2v.shared.document import parse_shot
from anyi2v.shared.shot import Shot
from tests.conftest import EXAMPLES, REPO

from .daemon_helpers import condition_image, running_server, shot_document, wait_ready

CHUNK = 77  # CLIP's positions: start token, 75 content tokens, end token (then padding)
CONTENT = CHUNK - 2
LIMIT = CONTENT * MAX_CHUNKS


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> Models:
    return random_models("tiny", seed=0, tokenizer_dir=tmp_path_factory.mktemp("tokenizer"))


def old_encoding(models: Models, text: str) -> torch.Tensor:
    """The encoding before chunks, verbatim: truncated to the tokenizer's length."""
    tokens = models.tokenizer(
        text, padding="max_length", max_length=models.tokenizer.model_max_length, truncation=True, return_tensors="pt"
    )
    with torch.no_grad():
        embeds: torch.Tensor = models.text_encoder(tokens.input_ids.to(models.device))[0]
    return embeds.to(models.dtype)


def chunk_alone(models: Models, ids: list[int]) -> torch.Tensor:
    """One chunk of content token ids encoded by hand: [BOS] + ids + [EOS] + padding, (1, 77, dim)."""
    tokenizer = models.tokenizer
    row = [tokenizer.bos_token_id, *ids, tokenizer.eos_token_id]
    row += [tokenizer.pad_token_id] * (CHUNK - len(row))
    with torch.no_grad():
        embeds: torch.Tensor = models.text_encoder(torch.tensor([row]))[0]
    return embeds


def ids_of(models: Models, text: str) -> list[int]:
    return list(models.tokenizer(text, add_special_tokens=False).input_ids)


def make_shot(prompt: str, negative_prompt: str = "", guidance: float = 7.5, **method: Any) -> Shot:
    document = shot_document(steps=2)
    document["prompt"], document["negative_prompt"] = prompt, negative_prompt
    document["sampling"]["guidance_scale"] = guidance
    document["method"] = {**document["method"], "inversion_timestep": 3, **method}
    return parse_shot(document, source="test", max_frames=32)


SHORT_PROMPTS = ["", "a red ball", "a red ball rolling across a wooden table, soft daylight", "x" * CONTENT]


@pytest.mark.parametrize("text", SHORT_PROMPTS)
def test_a_prompt_within_75_tokens_gives_exactly_the_old_embedding(models: Models, text: str) -> None:
    assert len(ids_of(models, text)) <= CONTENT
    old = old_encoding(models, text)
    assert torch.equal(encode_prompt(models, text), old)
    embeddings = encode_prompts(models, text, "blurry, low quality")
    assert torch.equal(embeddings.prompt, old)
    assert torch.equal(embeddings.conditional, old)
    assert embeddings.unconditional is not None
    assert torch.equal(embeddings.unconditional, old_encoding(models, "blurry, low quality"))
    unguided = encode_prompts(models, text, None)
    assert torch.equal(unguided.conditional, old)
    assert unguided.unconditional is None


def test_the_old_embedding_is_kept_with_a_tokenizer_that_pads_with_another_token(
    models: Models, tmp_path: Path
) -> None:
    """SD 2's tokenizer pads with "!" rather than the end token: each chunk pads as the tokenizer does."""
    models.tokenizer.save_pretrained(tmp_path)
    bang = Models(
        models.unet, models.vae, models.text_encoder, CLIPTokenizer.from_pretrained(tmp_path, pad_token="!"),
        models.scheduler, models.identity,
    )  # fmt: skip
    assert bang.tokenizer.pad_token_id != bang.tokenizer.eos_token_id
    for text in ["a red ball", "x" * CONTENT]:
        assert torch.equal(encode_prompt(bang, text), old_encoding(bang, text))


def test_a_long_prompt_is_split_into_chunks_of_75_tokens_each_encoded_on_its_own(models: Models) -> None:
    text = " ".join(["ab"] * 80)  # 160 tokens: chunks of 75, 75 and 10
    ids = ids_of(models, text)
    assert len(ids) == 160
    assert token_chunks(models.tokenizer, text, CHUNK) == [ids[:75], ids[75:150], ids[150:]]
    embeds = encode_prompt(models, text)
    assert embeds.shape == (1, 3 * CHUNK, 32)
    for index, start in enumerate(range(0, 160, CONTENT)):
        alone = chunk_alone(models, ids[start : start + CONTENT])
        torch.testing.assert_close(embeds[:, index * CHUNK : (index + 1) * CHUNK], alone, rtol=1e-5, atol=1e-6)
    # the first chunk is the whole of what the old encoding read (it cut the rest)
    torch.testing.assert_close(embeds[:, :CHUNK], old_encoding(models, text), rtol=1e-5, atol=1e-6)
    assert token_chunks(models.tokenizer, "", CHUNK) == [[]]
    assert len(token_chunks(models.tokenizer, "x" * (CONTENT + 1), CHUNK)) == 2


def test_the_shorter_of_prompt_and_negative_prompt_is_padded_with_empty_chunks(models: Models) -> None:
    long_text = "x" * 100  # two chunks
    empty = old_encoding(models, "")
    embeddings = encode_prompts(models, long_text, "blurry")
    assert embeddings.unconditional is not None
    assert embeddings.conditional.shape == embeddings.unconditional.shape == (1, 2 * CHUNK, 32)
    assert torch.equal(embeddings.prompt, embeddings.conditional)
    assert torch.equal(embeddings.unconditional[:, :CHUNK], old_encoding(models, "blurry"))
    assert torch.equal(embeddings.unconditional[:, CHUNK:], empty)
    # the empty negative prompt (the plain unconditional one) is as many empty chunks
    plain = encode_prompts(models, long_text, "")
    assert plain.unconditional is not None
    assert torch.equal(plain.unconditional, torch.cat([empty, empty], dim=1))
    # and the other way: a long negative prompt pads the prompt; the prompt's own embedding (the
    # inversion's, keyed by the prompt alone) stays one chunk
    flipped = encode_prompts(models, "a red ball", long_text)
    assert flipped.unconditional is not None
    assert flipped.conditional.shape == flipped.unconditional.shape == (1, 2 * CHUNK, 32)
    assert torch.equal(flipped.prompt, old_encoding(models, "a red ball"))
    assert torch.equal(flipped.conditional, torch.cat([flipped.prompt, empty], dim=1))
    # without guidance the negative prompt is not encoded and nothing is padded
    alone = encode_prompts(models, "a red ball", None)
    assert alone.unconditional is None
    assert alone.conditional.shape == (1, CHUNK, 32)


def test_embeddings_come_in_the_unets_dtype_and_device(tmp_path: Path) -> None:
    half = random_models("tiny", seed=0, tokenizer_dir=tmp_path).to("cpu", torch.float16)
    for text in ["a red ball", "x" * 100]:
        embeddings = encode_prompts(half, text, "blurry")
        for tensor in (embeddings.prompt, embeddings.conditional, embeddings.unconditional):
            assert tensor is not None
            assert tensor.dtype == torch.float16
            assert tensor.device == half.device
    assert torch.equal(encode_prompt(half, "a red ball"), old_encoding(half, "a red ball"))
    half.text_encoder.to(torch.float32)  # a text encoder kept in fp32 beside an fp16 UNet
    assert encode_prompts(half, "x" * 100, "").conditional.dtype == torch.float16


def test_a_prompt_past_the_ceiling_is_refused_naming_the_field_the_count_and_the_limit(models: Models) -> None:
    assert len(token_chunks(models.tokenizer, "x" * LIMIT, CHUNK)) == MAX_CHUNKS
    with pytest.raises(PromptTooLongError, match=rf"^prompt: {LIMIT + 1} tokens.* {LIMIT}\b"):
        encode_prompt(models, "x" * (LIMIT + 1))
    calls: list[int] = []
    handles = [
        module.register_forward_pre_hook(lambda *args: calls.append(1)) for module in (models.unet, models.text_encoder)
    ]
    try:
        with pytest.raises(InputError, match=rf"^prompt: {LIMIT + 7} tokens.* {LIMIT}\b"):
            generate(models, make_shot("x" * (LIMIT + 7)), condition_image())
        # the negative prompt too, even where this run would not use it
        with pytest.raises(InputError, match=rf"^negative_prompt: {LIMIT + 1} tokens.* {LIMIT}\b"):
            generate(models, make_shot("a red ball", "x" * (LIMIT + 1), guidance=1.0), None, control=False)
    finally:
        for handle in handles:
            handle.remove()
    assert not calls  # refused before any model work


def test_words_past_token_75_change_the_frames_of_a_controlled_run(models: Models) -> None:
    """A 2-chunk prompt runs the whole pipeline with control on (inversion, injection with the K/V copy,
    optimization, CFG against a 1-chunk negative prompt), and its second chunk counts."""
    head = "x" * CONTENT
    first = generate(models, make_shot(f"{head} a red ball"), condition_image())
    second = generate(models, make_shot(f"{head} a blue cube"), condition_image())
    assert len(first.frames) == len(second.frames) == 4
    assert first.losses
    assert second.losses
    assert any(not np.array_equal(a, b) for a, b in zip(first.frames, second.frames, strict=True))
    both_halves = make_shot(f"{head} a red ball", "y" * 200, kv_copy_halves="both", guidance=3.0)
    assert len(generate(models, both_halves, condition_image()).frames) == 4


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_a_two_chunk_prompt_runs_controlled_in_fp16_on_cuda(tmp_path: Path) -> None:
    half = random_models("tiny", seed=0, tokenizer_dir=tmp_path).to("cuda", torch.float16)
    embeddings = encode_prompts(half, "x" * 100, "blurry")
    for tensor in (embeddings.prompt, embeddings.conditional, embeddings.unconditional):
        assert tensor is not None
        assert (tensor.dtype, tensor.device.type) == (torch.float16, "cuda")
    head = "x" * CONTENT
    first = generate(half, make_shot(f"{head} a red ball"), condition_image())
    second = generate(half, make_shot(f"{head} a blue cube"), condition_image())
    assert len(first.frames) == len(second.frames) == 4
    assert all(np.isfinite(loss) for loss in first.losses)
    assert any(not np.array_equal(a, b) for a, b in zip(first.frames, second.frames, strict=True))


def test_the_toy_models_own_prompts_fit_one_chunk(tmp_path: Path) -> None:
    """The toy-world model was trained on prompts cut at 75 tokens: its captions (what ``anyi2v eval``
    prompts with) and the examples' prompts fit one chunk of its tokenizer, so chunking changes nothing
    for it. The examples fit one chunk of the tiny random model's character tokenizer too (the toy
    world's longer captions do not: on that untrained model ``anyi2v eval`` now reads them whole)."""
    toy = CLIPTokenizer.from_pretrained(REPO / "daemon" / "toyworld" / "weights" / "tokenizer")
    examples: list[str] = []
    for path in sorted(EXAMPLES.glob("*.json")):
        document = json.loads(path.read_text())
        examples += [document["prompt"], document.get("negative_prompt", "")]
    assert len(examples) >= 10
    captions: list[str] = []
    for seed in range(200):
        scene = sample_scene(seed)
        captions += [scene.caption(), *(scene.caption(modality) for modality in MODALITY_PHRASES)]
    for text in [*examples, *captions]:
        assert len(token_chunks(toy, text, CHUNK)) == 1, text
    byte = byte_tokenizer(tmp_path)
    for text in examples:
        assert len(token_chunks(byte, text, CHUNK)) == 1, text


def test_animate_refuses_a_too_long_prompt_in_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    document = json.loads((EXAMPLES / "quick_preview.json").read_text())
    document["prompt"] = "x" * (LIMIT + 1)
    document["conditions"][0]["source"]["path"] = str(EXAMPLES / document["conditions"][0]["source"]["path"])
    shot = tmp_path / "long.json"
    shot.write_text(json.dumps(document))
    out = tmp_path / "clip.mp4"
    assert main(["animate", str(shot), "--model", "tiny-random", "--out", str(out)]) == 2
    lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith("anyi2v animate:")]
    assert lines == [f"anyi2v animate: prompt: {LIMIT + 1} tokens, more than the {LIMIT} this model reads"
                     f" ({MAX_CHUNKS} chunks of {CONTENT}); shorten it"]  # fmt: skip
    assert not out.exists()


def test_a_daemon_job_with_a_too_long_prompt_fails_as_invalid_input(tmp_path: Path) -> None:
    document = {**shot_document(), "negative_prompt": "x" * (LIMIT + 1)}
    with running_server(tmp_path) as server, DaemonClient(server.address, timeout=20) as client:
        wait_ready(client)
        client.submit("long", document, condition_image(), subscribe=False)
        last = list(client.events("long"))[-1]
        assert last.type == "failed"
        assert last.content.reason == "invalid_input"
        assert f"negative_prompt: {LIMIT + 1} tokens" in last.content.message
