"""Settings forms described from the shot's own models: each field's kind, range, choices and help
text come from its pydantic definition, so the Advanced panel shows every knob the pipeline has (and
a new one appears without widget code)."""

from __future__ import annotations

import types
import typing
from dataclasses import dataclass
from typing import Any, Literal

import annotated_types
from pydantic import BaseModel


@dataclass(frozen=True)
class FieldSpec:
    """``kind`` is bool, int, float, choice or layers; ``optional`` means None is allowed (shown as off)."""

    name: str
    title: str
    kind: str
    description: str
    minimum: float | None = None
    maximum: float | None = None
    choices: tuple[str, ...] = ()
    optional: bool = False


# Words a field name spells in lower case that people write otherwise.
TITLE_WORDS = {"adain": "AdaIN", "pca": "PCA", "kv": "K/V", "lr": "LR"}


def field_title(name: str) -> str:
    """``residual_adain`` -> ``Residual AdaIN``: the first word capitalized, known acronyms as written."""
    words = [TITLE_WORDS.get(word, word) for word in name.split("_")]
    return " ".join([words[0][:1].upper() + words[0][1:], *words[1:]])


def _bounds(metadata: list[Any]) -> tuple[float | None, float | None]:
    low = high = None
    for item in metadata:
        if isinstance(item, annotated_types.Ge):
            low = float(item.ge)  # type: ignore[arg-type]
        elif isinstance(item, annotated_types.Gt):
            low = float(item.gt)  # type: ignore[arg-type]
        elif isinstance(item, annotated_types.Le):
            high = float(item.le)  # type: ignore[arg-type]
        elif isinstance(item, annotated_types.Lt):
            high = float(item.lt)  # type: ignore[arg-type]
    return low, high


def field_specs(model: type[BaseModel]) -> tuple[FieldSpec, ...]:
    specs = []
    for name, info in model.model_fields.items():
        annotation = info.annotation
        optional = False
        if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
            members = [arg for arg in typing.get_args(annotation) if arg is not type(None)]
            optional = len(members) < len(typing.get_args(annotation))
            annotation = members[0]
        low, high = _bounds(list(info.metadata))
        title = field_title(name)
        description = info.description or ""
        if annotation is bool:
            spec = FieldSpec(name, title, "bool", description)
        elif annotation is int:
            spec = FieldSpec(name, title, "int", description, low, high, optional=optional)
        elif annotation is float:
            spec = FieldSpec(name, title, "float", description, low, high, optional=optional)
        elif typing.get_origin(annotation) is Literal:
            spec = FieldSpec(name, title, "choice", description, choices=tuple(typing.get_args(annotation)))
        elif typing.get_origin(annotation) is tuple or "tuple" in str(annotation):
            spec = FieldSpec(name, title, "layers", description)
        else:
            raise TypeError(f"{model.__name__}.{name}: no form widget for {annotation!r}")
        specs.append(spec)
    return tuple(specs)


def parse_layers(text: str) -> list[str]:
    """A comma- or line-separated list of layer paths, blanks dropped."""
    return [part.strip() for part in text.replace("\n", ",").split(",") if part.strip()]
