"""Regenerate the CLIP ViT-L/14 tokenizer shipped in ``daemon/pipeline/configs/sd15/tokenizer/``.

Usage (from the repository root; needs only the standard library)::

    python -m pip download open_clip_torch --no-deps -d /tmp/ocwheel
    python tools/clip_tokenizer_files.py /tmp/ocwheel/open_clip_torch-*.whl

``SOURCE`` is the ``open_clip_torch`` wheel or the ``bpe_simple_vocab_16e6.txt.gz`` inside it (CLIP's BPE
merges as OpenAI published them, MIT); ``OUT`` defaults to the shipped folder. The files are written in the
layout transformers' ``CLIPTokenizer`` reads, with the special tokens and length of SD 1.5's tokenizer.

CLIP's vocabulary, in id order (OpenAI's ``SimpleTokenizer``): the 256 byte-level characters of GPT-2's
byte-to-unicode table, the same 256 each with ``</w>`` appended, the first 49152 - 256 - 2 merges of the
file (its lines 1 .. 48894; line 0 is a version header) each joined, then ``<|startoftext|>`` and
``<|endoftext|>``: 49408 tokens.
"""

from __future__ import annotations

import argparse
import gzip
import json
import sys
import zipfile
from collections.abc import Sequence
from pathlib import Path

N_MERGES = 49152 - 256 - 2
"""How many of the file's merges CLIP uses (the file holds more)."""

START_TOKEN = "<|startoftext|>"
END_TOKEN = "<|endoftext|>"
MAX_LENGTH = 77
WHEEL_MEMBER = "open_clip/bpe_simple_vocab_16e6.txt.gz"
SHIPPED = Path(__file__).resolve().parent.parent / "daemon" / "pipeline" / "configs" / "sd15" / "tokenizer"


def byte_characters() -> list[str]:
    """GPT-2's byte-to-unicode table in CLIP's order: the printable bytes (``!``..``~``, ``¡``..``¬``,
    ``®``..``ÿ``) as themselves, then every other byte, in byte order, as the characters from U+0100 on."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    others = [byte for byte in range(256) if byte not in printable]
    return [chr(byte) for byte in printable] + [chr(256 + index) for index in range(len(others))]


def clip_vocabulary(merges: Sequence[str]) -> dict[str, int]:
    """Token -> id for CLIP's ``merges`` (``"a b"`` lines, exactly :data:`N_MERGES` of them)."""
    if len(merges) != N_MERGES:
        raise ValueError(f"expected {N_MERGES} merges, got {len(merges)}")
    characters = byte_characters()
    tokens = [*characters, *(character + "</w>" for character in characters)]
    tokens += ["".join(merge.split(" ")) for merge in merges]
    tokens += [START_TOKEN, END_TOKEN]
    vocabulary = {token: index for index, token in enumerate(tokens)}
    if len(vocabulary) != len(tokens):
        raise ValueError("the merges make a token twice; not CLIP's merges file")
    return vocabulary


def read_merges(source: Path) -> list[str]:
    """The :data:`N_MERGES` merges CLIP uses, from the ``open_clip_torch`` wheel or its gzip BPE file."""
    if source.suffix == ".whl":
        with zipfile.ZipFile(source) as wheel:
            packed = wheel.read(WHEEL_MEMBER)
    else:
        packed = source.read_bytes()
    lines = gzip.decompress(packed).decode("utf-8").split("\n")
    merges = lines[1 : N_MERGES + 1]
    if len(merges) != N_MERGES:
        raise ValueError(f"{len(merges)} merges after the header line, expected {N_MERGES}; not CLIP's BPE file")
    malformed = [index + 1 for index, merge in enumerate(merges) if len(merge.split(" ")) != 2]
    if malformed:
        raise ValueError(f"lines {malformed[:5]} are not 'a b' pairs; not CLIP's BPE file")
    return merges


def write_tokenizer_files(merges: Sequence[str], folder: Path) -> None:
    """vocab.json, merges.txt, tokenizer_config.json and special_tokens_map.json for ``merges`` in ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    special = {"bos_token": START_TOKEN, "eos_token": END_TOKEN, "unk_token": END_TOKEN, "pad_token": END_TOKEN}
    config = {
        "tokenizer_class": "CLIPTokenizer",
        "model_max_length": MAX_LENGTH,
        "do_lower_case": True,
        "add_prefix_space": False,
        "errors": "replace",
        **special,
    }
    _write_json(folder / "vocab.json", clip_vocabulary(merges))
    (folder / "merges.txt").write_text("#version: 0.2\n" + "".join(f"{merge}\n" for merge in merges), "utf-8")
    _write_json(folder / "tokenizer_config.json", config)
    _write_json(folder / "special_tokens_map.json", special)


def _write_json(path: Path, value: object) -> None:
    path.write_text(json.dumps(value, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source", type=Path, help="the open_clip_torch wheel, or bpe_simple_vocab_16e6.txt.gz")
    parser.add_argument("out", type=Path, nargs="?", default=SHIPPED, help=f"where to write (default {SHIPPED})")
    arguments = parser.parse_args(argv)
    try:
        merges = read_merges(arguments.source)
    except (OSError, KeyError, ValueError, zipfile.BadZipFile) as error:
        print(f"{arguments.source}: {error}", file=sys.stderr)
        return 2
    write_tokenizer_files(merges, arguments.out)
    print(f"{arguments.out}: {len(merges) + 2 * 256 + 2} tokens")
    return 0


if __name__ == "__main__":
    sys.exit(main())
