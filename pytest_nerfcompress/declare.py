"""The `@compressor` decorator: declare a compressor in a conftest.py (no torch import here).

    @pytest_nerfcompress.compressor("halve-fine", gates={"psnr_drop": 2.0})
    def halve_fine(pair, calibration):
        ...                                  # return a new ModelPair

    @pytest_nerfcompress.compressor("my-int4")
    @pytest.fixture(scope="session")
    def my_int4(tmp_path_factory):
        return MyInt4Compressor(...)         # a Compressor, or a function (pair, calibration) -> ModelPair

The plugin finds declared objects in conftest modules (for the tests below that conftest) and other
plugins (for all tests), and adds them to the compressors the `nerf_compressor` fixture runs.
"""

from __future__ import annotations

import types
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Mapping

ATTRIBUTE = "__nerfcompress_compressor__"


@dataclass(frozen=True)
class Declaration:
    """What the decorator recorded: the compressor's name, default gates and description."""

    name: str
    gates: Mapping[str, float] = field(default_factory=dict)
    description: str = ""


def compressor(name: str, gates: Mapping[str, float] | None = None,
               description: str = "") -> Callable[[Any], Any]:
    """Mark a function `(pair, calibration) -> ModelPair`, a Compressor object, or a session-scoped
    fixture returning either, as the compressor `name`, with default gates (e.g. {"psnr_drop": 0.3})."""
    if not isinstance(name, str) or not name or ":" in name:
        raise ValueError(f"compressor name {name!r}: must be a non-empty string without ':'")

    def mark(obj: Any) -> Any:
        setattr(obj, ATTRIBUTE, Declaration(name, dict(gates or {}), description))
        return obj

    return mark


def fixture_name(obj: Any) -> str | None:
    """The fixture name if `obj` is a pytest fixture definition, else None.

    pytest >= 8.4 wraps fixtures in FixtureFunctionDefinition (`_fixture_function_marker`); older
    versions tag the function (`_pytestfixturefunction`); neither is public API, hence both."""
    marker = getattr(obj, "_fixture_function_marker", None) or getattr(obj, "_pytestfixturefunction", None)
    if marker is None:
        return None
    return getattr(marker, "name", None) or getattr(obj, "name", None) or obj.__name__


def declarations(module: types.ModuleType) -> Iterator[tuple[Declaration, Any]]:
    """Each (declaration, object) found among a module's attributes."""
    for value in list(vars(module).values()):
        decl = getattr(value, ATTRIBUTE, None) if callable(value) or hasattr(value, "compress") else None
        if isinstance(decl, Declaration):
            yield decl, value
