"""Builds the bench's larger checkpoints (random weights, nothing downloaded) into bench/.models/ (gitignored).

- `conformer-120m`: a Conformer-Transducer-Large-like BPE model (80 mels, 4x striding, 512 wide, 17 layers,
  8 heads, 1-layer LSTM 640, joint 640, vocab 1024), ~120 M parameters, ~0.5 GB .nemo.
- `parakeet-0.6b`: Parakeet-0.6B-like dims (`tests.factory.PARAKEET_DIMS`: FastConformer 1024 wide, 24 layers,
  dw_striding 8x, 128 mels, 2-layer LSTM 640, joint 640) with a 1024-piece BPE vocabulary; ~618 M parameters,
  ~2.5 GB .nemo. Needs ~8 GB of RAM to build.

The tokenizer (SentencePiece BPE, 1024 pieces) is trained here on generated pseudo-words. The demo model is the
bundled one (`assets/demo/demo-rnnt.nemo`). Run:

    python bench/models.py                   # both
    python bench/models.py conformer-120m    # one
    python bench/models.py --force parakeet-0.6b

Takes ~10 s for conformer-120m and ~40 s for parakeet-0.6b on a 2-core machine. Never used by the test suite.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path

from common import MODELS, REPO

sys.path.insert(0, str(REPO / "tests"))

import factory  # tests/ is not a package

VOCAB = 1024
CONFORMER_120M = factory.Dims(n_mels=80, d_model=512, n_layers=17, n_heads=8, subsampling="striding",
                              subsampling_factor=4, conv_kernel_size=31, pred_hidden=640, pred_rnn_layers=1,
                              joint_hidden=640)
SPECS = {"conformer-120m": CONFORMER_120M, "parakeet-0.6b": factory.PARAKEET_DIMS}


def tokenizer(directory: Path, vocab_size: int = VOCAB, seed: int = 0) -> Path:
    """A SentencePiece BPE tokenizer with `vocab_size` pieces, trained on generated pseudo-English text."""
    import sentencepiece as spm

    directory.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    onsets = ["", "b", "c", "d", "f", "g", "h", "j", "k", "l", "m", "n", "p", "r", "s", "t", "v", "w", "y", "z",
              "br", "ch", "cl", "dr", "fl", "gr", "pl", "pr", "sh", "sl", "sp", "st", "th", "tr", "wh"]
    nuclei = ["a", "e", "i", "o", "u", "ai", "ea", "ee", "oo", "ou", "ie", "y"]
    codas = ["", "", "n", "r", "s", "t", "l", "d", "m", "ng", "ck", "st", "nd", "rt"]
    words = ["".join(rng.choice(onsets) + rng.choice(nuclei) + rng.choice(codas)
                     for _ in range(rng.choice((1, 1, 2, 2, 3)))) for _ in range(6000)]
    lines = [" ".join(rng.choice(words) for _ in range(14)) for _ in range(8000)]
    text = directory / "text.txt"
    text.write_text(factory.TOKENIZER_TEXT + "\n" + "\n".join(lines) + "\n")
    spm.SentencePieceTrainer.train(
        input=str(text), model_prefix=str(directory / "tokenizer"), vocab_size=vocab_size, model_type="bpe",
        character_coverage=1.0, bos_id=-1, eos_id=-1, unk_id=0, minloglevel=2,
    )
    pieces = [line.split("\t")[0] for line in (directory / "tokenizer.vocab").read_text().splitlines()]
    (directory / "vocab.txt").write_text("\n".join(pieces) + "\n")
    return directory


def build(name: str, force: bool = False) -> Path:
    out = MODELS / f"{name}.nemo"
    if out.is_file() and not force:
        print(f"{out} exists (use --force to rebuild)", file=sys.stderr)
        return out
    import torch
    from nemo.collections.asr.models import EncDecRNNTBPEModel
    from omegaconf import OmegaConf

    start = time.perf_counter()
    tok = tokenizer(MODELS / f"tokenizer-{VOCAB}")
    torch.manual_seed(0)
    cfg = factory.bpe_rnnt_config(tok, SPECS[name], fuse=True, vocab_size=VOCAB)
    model = EncDecRNNTBPEModel(cfg=OmegaConf.create(cfg))
    params = sum(p.numel() for p in model.parameters())
    MODELS.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".tmp.nemo")
    model.save_to(str(tmp))
    tmp.replace(out)
    info = {"name": name, "params": params, "vocab": int(model.tokenizer.vocab_size),
            "bytes": out.stat().st_size, "build_s": round(time.perf_counter() - start, 1),
            "dims": SPECS[name].__dict__}
    (MODELS / f"{name}.json").write_text(json.dumps(info) + "\n")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("names", nargs="*", help=f"any of {', '.join(SPECS)} (default: all)")
    parser.add_argument("--force", action="store_true")
    args = parser.parse_args()
    from rnnt_tui.core.quiet import quiet

    unknown = [n for n in args.names if n not in SPECS]
    if unknown:
        parser.error(f"unknown model(s) {', '.join(unknown)}; choose from {', '.join(SPECS)}")
    for name in args.names or list(SPECS):
        with quiet():
            path = build(name, args.force)
        print(path, (MODELS / f"{name}.json").read_text().strip())


if __name__ == "__main__":
    main()
