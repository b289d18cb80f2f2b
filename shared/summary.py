"""A human-readable summary of a shot, for the CLI and logs."""

from __future__ import annotations

from .settings import MethodSettings
from .shot import ConditionLayer, ImageSource, MaskRegion, ModelChoice, Shot, WeightedModel
from .tracks import Track, sample_track


def _describe_layer(layer: ConditionLayer) -> str:
    source = f"image {layer.source.path}" if isinstance(layer.source, ImageSource) else "rendered from the scene"
    text = f"{layer.modality}, {source}"
    if layer.region is not None:
        inside = "outside" if layer.region.invert else "inside"
        where = (
            f"mask {layer.region.path}" if isinstance(layer.region, MaskRegion) else f"object {layer.region.object!r}"
        )
        text += f", {inside} {where}"
    return text


def _describe_track(track: Track, shot: Shot) -> str:
    boxes = sample_track(track, shot.output.n_frames)
    width, height = shot.output.width, shot.output.height
    start, end = boxes[0], boxes[-1]
    x_start, y_start = (start[0] + start[2]) / 2 * width, (start[1] + start[3]) / 2 * height
    x_end, y_end = (end[0] + end[2]) / 2 * width, (end[1] + end[3]) / 2 * height
    area_ratio = ((end[2] - end[0]) * (end[3] - end[1])) / ((start[2] - start[0]) * (start[3] - start[1]))
    keys = len(track.keyframes)
    label = f" ({track.label})" if track.label else ""
    text = (
        f"{track.id}{label}: {track.role}, {keys} key{'s' if keys != 1 else ''}, "
        f"centre ({x_start:.0f}, {y_start:.0f}) -> ({x_end:.0f}, {y_end:.0f}) px"
    )
    if abs(area_ratio - 1.0) > 0.01:
        text += f", area x{area_ratio:.2f}"
    if track.query_points:
        text += f", {len(track.query_points)} query point{'s' if len(track.query_points) != 1 else ''}"
    return text


def changed_method_settings(method: MethodSettings) -> list[str]:
    """``name = value`` for each method setting that differs from the paper's default."""
    defaults = MethodSettings()
    return [
        f"{name} = {getattr(method, name)!r}"
        for name in type(method).model_fields
        if getattr(method, name) != getattr(defaults, name)
    ]


def _describe_weighted(entries: tuple[WeightedModel, ...]) -> str:
    return ", ".join(f"{entry.name} ({entry.weight:g})" for entry in entries)


def describe_model(model: ModelChoice) -> str:
    """The shot's model choice in one line; what it leaves out is the daemon's default."""
    parts = [f"checkpoint {model.checkpoint}"] if model.checkpoint is not None else []
    if model.motion_module is not None:
        parts.append(f"motion module {model.motion_module}")
    for label, entries in (("LoRAs", model.loras), ("motion LoRAs", model.motion_loras)):
        if entries is not None:
            parts.append(f"{label} {_describe_weighted(entries)}" if entries else f"no {label}")
    if model.vae is not None:
        parts.append(f"VAE {model.vae}")
    if model.scheduler is not None:
        parts.append(f"scheduler {model.scheduler}")
    chosen = len(parts)
    if chosen < 6:
        parts.append("the rest the daemon's default" if chosen else "the daemon's default")
    return "; ".join(parts)


def describe_shot(shot: Shot) -> str:
    """A few lines that say what the shot will make."""
    out = shot.output
    lines = [
        f"shot {shot.name!r}" if shot.name else "shot",
        f"  output: {out.width}x{out.height}, {out.n_frames} frames at {out.fps:g} fps "
        f"({out.n_frames / out.fps:.2f} s)",
        f"  prompt: {shot.prompt!r}",
    ]
    if shot.negative_prompt:
        lines.append(f"  negative: {shot.negative_prompt!r}")
    sampling = shot.sampling
    lines.append(f"  sampling: seed {sampling.seed}, {sampling.steps} steps, guidance {sampling.guidance_scale:g}")
    if shot.scene is not None:
        camera = shot.scene.camera
        lines.append(f"  scene: {shot.scene.path} ({shot.scene.up_axis} up), camera at {list(camera.eye)}")
        path = shot.scene.camera_path
        if path:
            lines.append(
                f"    camera path: {len(path)} key{'s' if len(path) != 1 else ''}, last at frame {path[-1].frame}"
            )
        for motion in shot.scene.motions:
            keys = len(motion.keyframes)
            lines.append(
                f"    motion -> track {motion.track}: {', '.join(motion.objects)}, {keys} key{'s' if keys != 1 else ''}"
            )
        for anchor in shot.scene.anchors:
            on = ", ".join(anchor.objects) if anchor.objects else f"box {[list(c) for c in anchor.bounds or ()]}"
            lines.append(f"    anchor -> track {anchor.track}: {on}")
    lines.append(f"  conditions ({len(shot.conditions)}):")
    lines.extend(f"    {index}. {_describe_layer(layer)}" for index, layer in enumerate(shot.conditions))
    derived = shot.scene.derived_track_ids if shot.scene is not None else ()
    if shot.tracks:
        lines.append(f"  tracks ({len(shot.tracks)}):")
    elif derived:
        lines.append(f"  tracks: only those the scene's 3D motion produces ({', '.join(derived)})")
    else:
        lines.append("  tracks: none (no trajectory control)")
    lines.extend(f"    {_describe_track(track, shot)}" for track in shot.tracks)
    if shot.model is not None:
        lines.append(f"  model: {describe_model(shot.model)}")
    changed = changed_method_settings(shot.method)
    lines.append("  method: " + ("; ".join(changed) if changed else "AnyI2V paper defaults"))
    return "\n".join(lines)
