"""Write the example shots' condition images (run once; the PNGs are committed).

    python examples/make_condition_images.py

They are drawn analytically with numpy so that they match the first keyframe boxes of the
examples: a depth map of a ball on a table, edges of a street with two cars, a depth map of a
tree and a house. Later, `anyi2v render` makes such images from meshes.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from numpy.typing import NDArray
from PIL import Image

HERE = Path(__file__).resolve().parent / "images"


def grid(width: int, height: int) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Pixel-centre coordinates normalized to 0..1, shape (height, width) each."""
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float64)
    return (xs + 0.5) / width, (ys + 0.5) / height


def save(depth_or_edges: NDArray[np.float64], name: str) -> None:
    pixels = (np.clip(depth_or_edges, 0.0, 1.0) * 255).round().astype(np.uint8)
    Image.fromarray(pixels, mode="L").convert("RGB").save(HERE / name)


def ball_depth() -> NDArray[np.float64]:
    width = height = 512
    x, y = grid(width, height)
    # Table plane: nearer (brighter) towards the bottom of the frame.
    depth = np.where(y > 0.4, 0.25 + 0.5 * (y - 0.4) / 0.6, 0.1)
    cx, cy, radius = 0.2, 0.55, 0.1
    r2 = (x - cx) ** 2 + (y - cy) ** 2
    inside = r2 < radius**2
    bulge = np.sqrt(np.clip(radius**2 - r2, 0.0, None)) / radius
    return np.where(inside, 0.7 + 0.3 * bulge, depth)


def box_outline(image: NDArray[np.float64], box: tuple[float, float, float, float], thickness: int = 2) -> None:
    height, width = image.shape
    x0, y0, x1, y1 = (round(v * s) for v, s in zip(box, (width, height, width, height), strict=True))
    image[y0 : y0 + thickness, x0:x1] = 1.0
    image[y1 - thickness : y1, x0:x1] = 1.0
    image[y0:y1, x0 : x0 + thickness] = 1.0
    image[y0:y1, x1 - thickness : x1] = 1.0


def street_edges() -> NDArray[np.float64]:
    width, height = 768, 512
    edges = np.zeros((height, width))
    edges[int(0.45 * height) : int(0.45 * height) + 2, :] = 1.0  # kerb
    edges[int(0.85 * height) : int(0.85 * height) + 2, :] = 1.0  # kerb
    for start in np.arange(0.0, 1.0, 0.1):  # lane markings
        edges[int(0.66 * height) : int(0.66 * height) + 3, int(start * width) : int((start + 0.05) * width)] = 1.0
    for building in ((0.02, 0.05, 0.2, 0.45), (0.25, 0.12, 0.45, 0.45), (0.55, 0.0, 0.8, 0.45)):
        box_outline(edges, building)
    for car in ((0.05, 0.5, 0.3, 0.75), (0.7, 0.4, 0.9, 0.58)):
        box_outline(edges, car, thickness=3)
        x0, _, x1, y1 = car
        for wheel_x in (x0 + 0.2 * (x1 - x0), x1 - 0.2 * (x1 - x0)):  # wheels
            x, y = grid(width, height)
            ring = np.abs(np.hypot((x - wheel_x) * width, (y - y1) * height) - 12) < 1.5
            edges[ring] = 1.0
    return edges


def house_depth() -> NDArray[np.float64]:
    width = height = 512
    x, y = grid(width, height)
    depth = np.where(y > 0.6, 0.2 + 0.4 * (y - 0.6) / 0.4, 0.05)  # meadow, sky far away
    trunk = (np.abs(x - 0.2) < 0.02) & (y > 0.5) & (y < 0.7)
    crown = (x - 0.2) ** 2 + ((y - 0.42) * 1.2) ** 2 < 0.09**2
    depth = np.where(trunk | crown, 0.75, depth)
    walls = (x > 0.58) & (x < 0.82) & (y > 0.5) & (y < 0.75)
    roof = (y > 0.35) & (y <= 0.5) & (np.abs(x - 0.7) < (y - 0.35) / 0.15 * 0.14)
    return np.where(walls | roof, 0.55, depth)


def main() -> None:
    HERE.mkdir(exist_ok=True)
    save(ball_depth(), "ball_depth.png")
    save(street_edges(), "street_edges.png")
    save(house_depth(), "house_depth.png")
    print(f"wrote 3 images to {HERE}")


if __name__ == "__main__":
    main()
