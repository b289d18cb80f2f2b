"""Issue 19, item 14 (render): a PNG decompression bomb as an image layer or a mask, and vertices near
1e308, are refused with one line naming the file (and the shot's field), never a traceback or a
Pillow warning."""

from __future__ import annotations

import json
import warnings
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from anyi2v.cli import main
from anyi2v.render.assets import NonFiniteAsset, normalize, read_asset
from anyi2v.render.condition import RenderError
from anyi2v.render.geometry import Asset, MeshObject
from anyi2v.render.shot_conditions import MAX_IMAGE_PIXELS, read_image


def _png_bomb(path: Path, width: int, height: int) -> None:
    """A 1-bit PNG of width x height zeros: a few hundred KiB that decode to width * height pixels."""
    row = b"\0" + bytes((width + 7) // 8)
    compressor = zlib.compressobj(9)
    body = b"".join(compressor.compress(row) for _ in range(height)) + compressor.flush()

    def chunk(kind: bytes, data: bytes) -> bytes:
        return len(data).to_bytes(4, "big") + kind + data + zlib.crc32(kind + data).to_bytes(4, "big")

    header = width.to_bytes(4, "big") + height.to_bytes(4, "big") + bytes([1, 0, 0, 0, 0])
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", body) + chunk(b"IEND", b""))


@pytest.mark.parametrize("side", [10_000, 14_000])  # over our cap; over Pillow's warning threshold too
def test_a_png_bomb_is_refused_by_its_header(tmp_path: Path, side: int) -> None:
    bomb = tmp_path / "bomb.png"
    _png_bomb(bomb, side, side)
    assert side * side > MAX_IMAGE_PIXELS
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no DecompressionBombWarning may escape
        with pytest.raises(RenderError) as caught:
            read_image(bomb, 64, 64, where="conditions[0].source.path")
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith("conditions[0].source.path: ")
    assert "bomb.png" in message
    assert f"{side}x{side}" in message


def test_a_png_bomb_beyond_pillows_hard_limit_is_refused_the_same_way(tmp_path: Path) -> None:
    bomb = tmp_path / "huge.png"
    _png_bomb(bomb, 20_000, 20_000)  # 400 megapixels: Pillow's open raises DecompressionBombError
    with pytest.raises(RenderError, match=r"^conditions\[1\]\.region\.path: .*huge\.png.*20000x20000"):
        read_image(bomb, 64, 64, where="conditions[1].region.path")


def _bomb_shot(folder: Path, *, as_mask: bool) -> Path:
    Image.new("RGB", (64, 64), (200, 10, 10)).save(folder / "fine.png")
    _png_bomb(folder / "bomb.png", 12_000, 12_000)
    layer: dict[str, object] = {"source": {"kind": "image", "path": "fine.png"}, "modality": "other"}
    if as_mask:
        layer["region"] = {"kind": "mask", "path": "bomb.png"}
    else:
        layer["source"] = {"kind": "image", "path": "bomb.png"}
    shot = {
        "schema_version": 1,
        "name": "bomb",
        "prompt": "a bomb",
        "output": {"width": 64, "height": 64, "n_frames": 8, "fps": 8},
        "conditions": [layer],
    }
    path = folder / "shot.json"
    path.write_text(json.dumps(shot))
    return path


@pytest.mark.parametrize("as_mask", [False, True], ids=["layer", "mask"])
def test_render_refuses_a_bomb_layer_or_mask_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], as_mask: bool
) -> None:
    shot = _bomb_shot(tmp_path, as_mask=as_mask)
    assert main(["render", str(shot), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1, err
    assert "bomb.png" in err
    assert ("conditions[0].region.path" if as_mask else "conditions[0].source.path") in err
    assert "Traceback" not in err
    assert "DecompressionBomb" not in err


def _mesh(vertices: list[list[float]]) -> MeshObject:
    return MeshObject("huge", np.array(vertices, dtype=np.float64), np.array([[0, 1, 2]]))


def test_normalising_an_extent_that_overflows_is_refused() -> None:
    spanning = _mesh([[-1e308, 0.0, 0.0], [1e308, 0.0, 0.0], [0.0, 1.0, 0.0]])  # 2e308 wide: inf
    with pytest.raises(NonFiniteAsset, match=r"^huge\.stl: .*overflow"):
        normalize(Asset(source="/somewhere/huge.stl", objects=(spanning,)))


def test_vertices_near_the_float_limit_normalise_to_finite_coordinates() -> None:
    far = _mesh([[1e308, 1e308, 0.0], [1.7e308, 1e308, 0.0], [1e308, 1.7e308, 1.0]])  # centre was inf
    fitted = normalize(Asset(source="far.stl", objects=(far,))).objects[0].points
    assert np.isfinite(fitted).all()
    assert np.abs(fitted).max() == pytest.approx(0.5)


def test_a_file_whose_vertices_overflow_is_refused_naming_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "far.obj"
    path.write_text("v -1e308 0 0\nv 1e308 0 0\nv 0 1e308 1\nf 1 2 3\n")
    with pytest.raises(NonFiniteAsset) as caught:
        read_asset(path)
    assert str(caught.value).startswith("far.obj: ")
    assert main(["render", str(path), "--out", str(tmp_path / "far.png")]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1
    assert "far.obj" in err


def test_normalised_assets_keep_their_numbers_for_ordinary_coordinates() -> None:
    mesh = _mesh([[1.0, 2.0, 3.0], [4.5, -2.0, 0.25], [0.1, 0.7, 9.0]])
    fitted = normalize(Asset(source="m.stl", objects=(mesh,))).objects[0].points
    points = mesh.points
    low, high = points.min(axis=0), points.max(axis=0)
    expected = (points - (low + high) / 2.0) * (1.0 / float((high - low).max()))
    assert np.array_equal(fitted, expected)
