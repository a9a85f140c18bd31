"""fp16, mixed precision and compressed weights of the tool's own conversion, in the MIL interpreter ("Core ML
program, MIL interpreter" - not Core ML: no Neural Engine arithmetic; the macOS tests check Core ML itself).

1. fp16 fix: the trained demo (char RNNT) and the TDT factory model (random weights), speech-like clips of 1, 4,
   15, 30 and 60 s (the demo clips repeated): coremltools' plain fp16 (`fp16-all`) and the tool's `fp16` against
   the fp32 program on NeMo's inputs: preprocessor and encoder max |Δ| (encoder also relative to its output
   range), all outputs finite, the encoder length equal, and (demo) the decode through the programs identical.
   Goals: finite, encoder ≤ 0.02 of range, demo decode identical.
2. Mixed precision on the demo's three clips: ops kept fp32 (share; goal ≤ 5 %), search time over one fp32 run
   of the clips (goal ≤ 3x), components within the fp16 tolerances and the decode identical.
3. Compressed weights on the demo (int8, palettize6, palettize4 over fp16): per-component max |Δ| against the
   fp32 program, package size, and the decode on the three demo clips (tokens identical / agreement).

Run:   python bench/precision.py [--seconds 1,4,15,30,60] [--models demo,tdt]
Writes bench/results/precision.json.
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path
from typing import Any

from common import REPO, WORK, save, speech_like

sys.path.insert(0, str(REPO / "tests"))


def _model(name: str) -> Any:
    from rnnt_tui.core.checkpoint import restore
    from rnnt_tui.paths import demo_checkpoint

    if name == "demo":
        return restore(demo_checkpoint())
    import factory

    path = WORK / "precision" / f"{name}.nemo"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        factory.build(name, path, WORK / "precision" / "work")
    return restore(path)


def _size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def fp16_fix(loaded: Any, seconds: list[float]) -> list[dict[str, Any]]:
    import numpy as np

    from rnnt_tui.core.coreml.convert import convert_components
    from rnnt_tui.core.mil import MilProgram
    from rnnt_tui.core.precision.certify import _decode_check
    from rnnt_tui.core.precision.runs import max_diff, reference_feeds, value_range

    packages = {p: {c.component: c.path for c in convert_components(loaded, p)} for p in ("fp32", "fp16-all", "fp16")}
    programs = {p: {c: MilProgram.load(path) for c, path in pk.items()} for p, pk in packages.items()}
    rows = []
    for s in seconds:
        feeds = reference_feeds(loaded, speech_like(s))
        ref = {c: programs["fp32"][c].run(feeds[c]) for c in ("preprocessor", "encoder")}
        for precision in ("fp16-all", "fp16"):
            start = time.perf_counter()
            got = {c: programs[precision][c].run(feeds[c]) for c in ("preprocessor", "encoder")}
            decode = _decode_check(loaded, packages["fp32"], packages[precision], feeds, {}, None)
            rows.append({
                "seconds": s, "precision": precision,
                "preprocessor_max_diff": max_diff(ref["preprocessor"], got["preprocessor"]),
                "encoder_max_diff": max_diff(ref["encoder"], got["encoder"]),
                "encoder_relative": max_diff(ref["encoder"], got["encoder"]) / value_range(ref["encoder"], "encoded"),
                "finite": all(bool(np.isfinite(np.asarray(v, np.float64)).all()) for o in got.values()
                              for v in o.values()),
                "encoded_length": [int(ref["encoder"]["encoded_length"][0]), int(got["encoder"]["encoded_length"][0])],
                "decode_identical": decode.identical if decode else None,
                "token_agreement": decode.token_agreement if decode else None,
                "joint_argmax_agreement": decode.joint_argmax_agreement if decode else None,
                "interpreter_s": round(time.perf_counter() - start, 2)})
            print(rows[-1], file=sys.stderr)
    return rows


def mixed(loaded: Any) -> dict[str, Any]:
    from rnnt_tui.core.precision.mixed import find_mixed_precision

    result = find_mixed_precision(loaded, use_cache=False)
    data = result.to_json()
    data.pop("snippet")
    data["keep_fp32"] = {c: len(v) for c, v in data["keep_fp32"].items()}
    return data


def weights(loaded: Any) -> list[dict[str, Any]]:
    from rnnt_tui.core.audio import load_audio
    from rnnt_tui.core.coreml.convert import convert_components
    from rnnt_tui.core.mil import MilProgram
    from rnnt_tui.core.precision.certify import _decode_check
    from rnnt_tui.core.precision.runs import max_diff, reference_feeds
    from rnnt_tui.paths import demo_dir

    ref_pk = {c.component: c.path for c in convert_components(loaded, "fp32")}
    clips = [load_audio(p, 16000).samples for p in sorted(demo_dir().glob("*.wav"))]
    feeds = [reference_feeds(loaded, c) for c in clips]
    rows = []
    for scheme in (None, "int8", "palettize6", "palettize4"):
        pk = {c.component: c.path for c in convert_components(loaded, "fp16", weights=scheme)}
        diffs = {c: max(max_diff(MilProgram.load(ref_pk[c]).run(f[c]), MilProgram.load(pk[c]).run(f[c]))
                        for f in feeds) for c in pk}
        decodes = [_decode_check(loaded, ref_pk, pk, f, {}, None) for f in feeds]
        rows.append({"weights": scheme or "fp16", "max_diff": diffs,
                     "bytes": {c: _size(p) for c, p in pk.items()},
                     "decode_identical": [d.identical if d else None for d in decodes],
                     "token_agreement": [d.token_agreement if d else None for d in decodes]})
        print(rows[-1], file=sys.stderr)
    return rows


def main() -> None:
    import numpy as np

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", default="1,4,15,30,60")
    parser.add_argument("--models", default="demo,tdt")
    args = parser.parse_args()
    started = time.monotonic()
    seconds = [float(s) for s in args.seconds.split(",")]
    payload: dict[str, Any] = {"label": "Core ML program, MIL interpreter", "fp16": {}}
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for name in args.models.split(","):
            loaded = _model(name)
            payload["fp16"][name] = fp16_fix(loaded, seconds)
            if name == "demo":
                payload["mixed"] = mixed(loaded)
                payload["weights"] = weights(loaded)
    save("precision", payload, started=started)


if __name__ == "__main__":
    main()
