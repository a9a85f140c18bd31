"""Saving a Core AI asset without a third copy of the weights (`core.coreai.export.save_released`): the asset it
writes is the one coreai-core's own `save_asset` writes (same bytecode, same `main.hash`, a valid asset with its
producer stamped), and the program is released before the file is hashed (issue 19, point 8: conversion memory)."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from rnnt_tui.core.coreai.platform import coreai_problem

pytestmark = [pytest.mark.skipif(coreai_problem(need_converter=True) is not None,
                                 reason=f"Core AI cannot run here: {coreai_problem(need_converter=True)}"),
              pytest.mark.filterwarnings("ignore::UserWarning", "ignore::DeprecationWarning")]


def test_save_released_writes_what_save_asset_writes(loaded_model: Callable[[str], Any], tmp_path: Path) -> None:
    from rnnt_tui.core.coreai.assets import read_asset
    from rnnt_tui.core.coreai.convert import IO, _example
    from rnnt_tui.core.coreai.export import export_program, load_coreai_torch, save_released

    coreai_torch = load_coreai_torch()
    module, args, dynamic, _ = _example(loaded_model("rnnt-char"), "joint", None, False)

    def program() -> Any:
        converter = coreai_torch.TorchConverter()
        converter.add_exported_program(export_program(module, args, dynamic), input_names=list(IO["joint"][0]),
                                       output_names=list(IO["joint"][1]))
        return converter.to_coreai()

    theirs = program().save_asset(tmp_path / "theirs.aimodel")
    mine = program()
    alive = weakref.ref(mine)
    holder = [mine]
    del mine
    ours = save_released(holder, tmp_path / "ours.aimodel")
    gc.collect()
    assert alive() is None and not holder  # released: nothing holds the program any more
    for name in ("main.hash", "main.mlirb"):
        assert (tmp_path / "ours.aimodel" / name).read_bytes() == (tmp_path / "theirs.aimodel" / name).read_bytes()
    info = read_asset(tmp_path / "ours.aimodel")  # checks the metadata, bytecode and hash
    assert info.producer == read_asset(tmp_path / "theirs.aimodel").producer and "main" in info.functions
    assert type(ours) is type(theirs)
