"""The config-only summary: every field against the config the model was built from, and refusals."""

from __future__ import annotations

import io
import subprocess
import sys
import tarfile
from pathlib import Path

import factory
import pytest
import yaml

from rnnt_tui.core.errors import BadInputError
from rnnt_tui.core.summary import read_summary

EXPECTED_KIND = {"rnnt-char": "rnnt", "rnnt-bpe": "rnnt", "tdt": "tdt", "hybrid": "hybrid-rnnt-ctc"}
EXPECTED_CLASS = {"rnnt-char": "EncDecRNNTModel", "rnnt-bpe": "EncDecRNNTBPEModel", "tdt": "EncDecRNNTBPEModel",
                  "hybrid": "EncDecHybridRNNTCTCModel"}


@pytest.mark.parametrize("kind", factory.KINDS)
def test_summary_matches_the_config(checkpoints: dict[str, Path], kind: str) -> None:
    summary = read_summary(checkpoints[kind])
    dims = factory.Dims()
    vocab = 48 if kind in ("rnnt-bpe", "tdt") else len(factory.LABELS)
    durations = factory.TDT_DURATIONS if kind == "tdt" else None
    assert summary.model_class == EXPECTED_CLASS[kind]
    assert summary.kind == EXPECTED_KIND[kind]
    assert summary.sample_rate == 16000
    assert summary.n_mels == dims.n_mels
    assert summary.tokenizer == ("bpe" if kind in ("rnnt-bpe", "tdt") else "char")
    assert summary.vocab_size == vocab
    assert summary.blank_id == vocab
    assert summary.durations == durations
    assert summary.encoder.type == "ConformerEncoder"
    assert (summary.encoder.d_model, summary.encoder.n_layers) == (dims.d_model, dims.n_layers)
    assert summary.encoder.subsampling_factor == dims.subsampling_factor
    assert (summary.decoder.pred_hidden, summary.decoder.pred_rnn_layers) == (dims.pred_hidden, dims.pred_rnn_layers)
    assert summary.joint.joint_hidden == dims.joint_hidden
    assert summary.joint.fuse_loss_wer is True
    assert summary.joint.fused_batch_size == 4
    assert summary.joint.log_softmax is None
    assert summary.joint.num_classes_with_blank == vocab + 1 + (len(durations) if durations else 0)
    data = summary.to_json()
    for key in ("model_class", "kind", "sample_rate", "n_mels", "vocab_size", "blank_id", "durations", "encoder",
                "decoder", "joint"):
        assert key in data


def test_ctc_model_is_refused_with_what_it_is(checkpoints: dict[str, Path]) -> None:
    with pytest.raises(BadInputError) as info:
        read_summary(checkpoints["ctc"])
    message = str(info.value)
    assert str(checkpoints["ctc"]) in message
    assert "CTC model (EncDecCTCModel)" in message
    assert "supports RNNT, TDT and hybrid RNNT-CTC" in message


def _archive_with_config(path: Path, config: dict) -> Path:
    text = yaml.safe_dump(config).encode()
    with tarfile.open(path, "w") as tar:
        info = tarfile.TarInfo("./model_config.yaml")
        info.size = len(text)
        tar.addfile(info, io.BytesIO(text))
    return path


def test_interpolations_resolve_and_fuse_flag_is_read(tmp_path: Path) -> None:
    cfg = factory.char_rnnt_config(fuse=False)
    cfg["joint"]["jointnet"]["joint_hidden"] = "${model_defaults.joint_hidden}"
    cfg["model_defaults"]["joint_hidden"] = 321
    cfg["target"] = "nemo.collections.asr.models.rnnt_models.EncDecRNNTModel"
    summary = read_summary(_archive_with_config(tmp_path / "m.nemo", cfg))
    assert summary.joint.joint_hidden == 321
    assert summary.joint.fuse_loss_wer is False
    assert summary.joint.fused_batch_size is None


def test_not_an_asr_model_is_refused(tmp_path: Path) -> None:
    path = _archive_with_config(tmp_path / "llm.nemo", {"target": "nemo.collections.llm.GPTModel", "hidden": 8})
    with pytest.raises(BadInputError, match="not an ASR model"):
        read_summary(path)


def test_summary_imports_neither_torch_nor_nemo(checkpoints: dict[str, Path]) -> None:
    code = ("import sys; from rnnt_tui.core.summary import read_summary; "
            f"read_summary({str(checkpoints['tdt'])!r}); "
            "print(sorted(m for m in ('torch', 'nemo', 'coremltools', 'onnxruntime', 'textual') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
