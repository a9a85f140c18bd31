#!/usr/bin/env python
"""Build the bundled rnnt-tui demo: a tiny NeMo char RNNT model that really transcribes three clips.

What it does
------------
1. Synthesises three short English phrases with espeak-ng (voice ``en-us``, 150 wpm, default pitch) and
   resamples them to 16 kHz mono 16-bit PCM wav with `sox -D` (no dither, so the clips are bit-identical
   between runs; the soxr Python package is used as a fallback if sox is missing).
2. Builds a small character-level ``nemo.collections.asr.models.EncDecRNNTModel`` from an OmegaConf config
   written in the style of NeMo's ``examples/asr/conf/conformer/conformer_transducer_char.yaml``:
   labels = space, a-z, apostrophe; a 2-layer, 64-wide ConformerEncoder (rel_pos attention, striding 4x
   subsampling, batch-norm conv module) over 80 mel features at 16 kHz (dither 0.0, pad_to 0); a 1-layer
   LSTM RNNTDecoder (64 units, blank_as_pad); an RNNTJoint (joint_hidden 64); greedy_batch decoding.
   The joint is saved exactly like NeMo's example configs do it: ``fuse_loss_wer: true``,
   ``fused_batch_size: 4``, ``log_softmax: null`` -- the demo is meant to exhibit the fuse-mode behaviour
   that rnnt-tui is about (calling ``joint(encoder_outputs=, decoder_outputs=)`` raises in fused mode).
3. Trains it on CPU with a plain RNNT loss written in torch (log-space forward recursion over the T x U
   lattice). Training calls the components directly: ``model.forward`` (preprocessor + encoder),
   ``model.decoder`` and ``model.joint.joint(f, g)``; the latter bypasses the fused-mode checks, so the
   joint never leaves fused mode and its attached loss / WER modules stay in place. Each step sees the
   three clean clips plus three lightly augmented copies (speed jitter by resampling, gain, white noise,
   a little silence padding).
4. Every ``--eval-every`` steps runs NeMo's own ``model.transcribe([paths])`` (after ``model.eval()``;
   transcribe leaves the modules in training mode) on the clean clips. It stops once (a) the transcripts are
   exactly the phrases on ``--patience`` consecutive evaluations, (b) six fixed augmented copies that are
   never trained on also decode exactly, and (c) every greedy decision on the clean clips beats the best
   wrong token by at least ``--min-margin`` nats (headroom for fp16 / Core ML rounding) -- or after
   ``--max-steps``. Prints the transcripts at every evaluation.
5. Saves ``demo-rnnt.nemo`` (~1.6 MB), restores it with ``ASRModel.restore_from`` and checks the
   transcripts again, then writes ``clips.json`` = ``[{"audio": "hello-world.wav", "text": "hello world"},
   ...]`` next to the clips.

Everything is seeded (``random``, ``numpy``, ``torch``; ``--seed``, default 0). espeak-ng output is
deterministic for a given espeak-ng version; the weights are reproducible for a given torch build and
thread count (the ``.nemo`` tarball itself carries timestamps, so its bytes differ between runs).

How long it takes
-----------------
About 30 s on two CPU cores: ~400 steps of ~40 ms plus a NeMo transcribe call every ``--eval-every``
steps; importing NeMo takes another ~10 s. 368 k parameters; the .nemo is ~1.6 MB.

How to run
----------
    python scripts/train_demo.py --out assets/demo

Needs: nemo_toolkit[asr], torch (CPU is fine), soundfile, numpy, espeak-ng and sox on PATH (or the
``soxr`` Python package).
"""

from __future__ import annotations

import argparse
import json
import logging
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

PHRASES = ["hello world", "the quick brown fox", "core ml on a mac"]
LABELS = [" ", *"abcdefghijklmnopqrstuvwxyz", "'"]
SAMPLE_RATE = 16000
ESPEAK_VOICE = "en-us"
ESPEAK_SPEED = 150  # words per minute


# ----------------------------------------------------------------------------------------------------------
# Audio
# ----------------------------------------------------------------------------------------------------------
def clip_name(text: str) -> str:
    return text.replace(" ", "-").replace("'", "") + ".wav"


def synthesize(text: str, out_wav: Path) -> None:
    """espeak-ng -> 22.05 kHz wav -> 16 kHz mono 16-bit wav."""
    import soundfile as sf

    espeak = shutil.which("espeak-ng")
    if espeak is None:
        raise SystemExit("espeak-ng not found on PATH")
    with tempfile.TemporaryDirectory() as tmp:
        raw = Path(tmp) / "raw.wav"
        subprocess.run([espeak, "-v", ESPEAK_VOICE, "-s", str(ESPEAK_SPEED), "-w", str(raw), text], check=True)
        sox = shutil.which("sox")
        if sox is not None:
            # -D: no dither (sox dithers with fresh random noise by default, which makes the clips differ per run)
            subprocess.run(
                [sox, "-D", str(raw), "-r", str(SAMPLE_RATE), "-c", "1", "-b", "16", str(out_wav)], check=True
            )
        else:  # pragma: no cover - fallback
            import soxr

            audio, sr = sf.read(str(raw), dtype="float32", always_2d=True)
            audio = soxr.resample(audio.mean(axis=1), sr, SAMPLE_RATE)
            sf.write(str(out_wav), audio, SAMPLE_RATE, subtype="PCM_16")


def load_wav(path: Path) -> np.ndarray:
    import soundfile as sf

    audio, sr = sf.read(str(path), dtype="float32", always_2d=True)
    assert sr == SAMPLE_RATE, (path, sr)
    return audio.mean(axis=1)


def augment(audio: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Light augmentation: speed jitter (resampling), gain, white noise, a little leading/trailing silence."""
    import soxr

    speed = rng.uniform(0.9, 1.1)
    out = soxr.resample(audio, SAMPLE_RATE, SAMPLE_RATE / speed).astype(np.float32)
    out = out * rng.uniform(0.5, 1.5)
    lead = np.zeros(int(rng.uniform(0.0, 0.15) * SAMPLE_RATE), np.float32)
    tail = np.zeros(int(rng.uniform(0.0, 0.15) * SAMPLE_RATE), np.float32)
    out = np.concatenate([lead, out, tail])
    snr_db = rng.uniform(20.0, 40.0)
    rms = float(np.sqrt(np.mean(out**2)) + 1e-8)
    out = out + rng.standard_normal(out.shape).astype(np.float32) * rms * 10 ** (-snr_db / 20)
    return np.clip(out, -1.0, 1.0)


# ----------------------------------------------------------------------------------------------------------
# Model
# ----------------------------------------------------------------------------------------------------------
def model_config() -> dict:
    """A tiny conformer_transducer_char.yaml (same keys; small sizes)."""
    sr = SAMPLE_RATE
    d_model, pred_hidden, joint_hidden = 64, 64, 64
    return {
        "sample_rate": sr,
        "compute_eval_loss": False,
        "log_prediction": False,
        "labels": LABELS,
        "model_defaults": {"enc_hidden": d_model, "pred_hidden": pred_hidden, "joint_hidden": joint_hidden},
        "train_ds": {"manifest_filepath": None, "sample_rate": sr, "batch_size": 6, "shuffle": True},
        "validation_ds": {"manifest_filepath": None, "sample_rate": sr, "batch_size": 1, "shuffle": False},
        "test_ds": {"manifest_filepath": None, "sample_rate": sr, "batch_size": 1, "shuffle": False},
        "preprocessor": {
            "_target_": "nemo.collections.asr.modules.AudioToMelSpectrogramPreprocessor",
            "sample_rate": sr,
            "normalize": "per_feature",
            "window_size": 0.025,
            "window_stride": 0.01,
            "window": "hann",
            "features": 80,
            "n_fft": 512,
            "frame_splicing": 1,
            "dither": 0.0,
            "pad_to": 0,
        },
        "spec_augment": None,
        "encoder": {
            "_target_": "nemo.collections.asr.modules.ConformerEncoder",
            "feat_in": 80,
            "feat_out": -1,
            "n_layers": 2,
            "d_model": d_model,
            "subsampling": "striding",
            "subsampling_factor": 4,
            "subsampling_conv_channels": -1,
            "causal_downsampling": False,
            "ff_expansion_factor": 4,
            "self_attention_model": "rel_pos",
            "n_heads": 4,
            "att_context_size": [-1, -1],
            "att_context_style": "regular",
            "xscaling": True,
            "untie_biases": True,
            "pos_emb_max_len": 5000,
            "conv_kernel_size": 15,
            "conv_norm_type": "batch_norm",
            "conv_context_size": None,
            "dropout": 0.1,
            "dropout_emb": 0.0,
            "dropout_att": 0.1,
        },
        "decoder": {
            "_target_": "nemo.collections.asr.modules.RNNTDecoder",
            "normalization_mode": None,
            "random_state_sampling": False,
            "blank_as_pad": True,
            "prednet": {"pred_hidden": pred_hidden, "pred_rnn_layers": 1, "t_max": None, "dropout": 0.1},
        },
        "joint": {
            "_target_": "nemo.collections.asr.modules.RNNTJoint",
            "log_softmax": None,
            "preserve_memory": False,
            "fuse_loss_wer": True,
            "fused_batch_size": 4,
            "jointnet": {"joint_hidden": joint_hidden, "activation": "relu", "dropout": 0.1},
        },
        "decoding": {"strategy": "greedy_batch", "greedy": {"max_symbols": 10}},
        "loss": {"loss_name": "default", "warprnnt_numba_kwargs": {"fastemit_lambda": 0.0, "clamp": -1.0}},
    }


def rnnt_loss(log_probs, targets, logit_lengths, target_lengths, blank: int):
    """Per-utterance RNNT negative log-likelihood, in plain torch.

    log_probs: [B, T, U+1, V+1] log-softmaxed joint output; targets: [B, U]; lengths: [B].
    alpha[t, u] = logaddexp(alpha[t-1, u] + blank[t-1, u], alpha[t, u-1] + emit[t, u-1]).
    The u-recursion inside one time step is a log-semiring linear recurrence, solved in closed form with a
    cumulative sum and ``torch.logcumsumexp`` (so the Python loop only runs over T).
    """
    import torch

    lp = log_probs.double()
    B, T, U1, _ = lp.shape
    blank_lp = lp[..., blank]  # [B, T, U+1]
    tgt = targets[:, : U1 - 1].long()
    emit_lp = lp[:, :, : U1 - 1, :].gather(-1, tgt[:, None, :, None].expand(B, T, U1 - 1, 1)).squeeze(-1)
    zeros = lp.new_zeros(B, 1)
    alphas = []
    alpha = None
    for t in range(T):
        cum_emit = torch.cat([zeros, emit_lp[:, t].cumsum(-1)], dim=1)  # [B, U+1]
        if t == 0:
            alpha = cum_emit
        else:
            x = alpha + blank_lp[:, t - 1]
            alpha = cum_emit + torch.logcumsumexp(x - cum_emit, dim=1)
        alphas.append(alpha)
    alphas = torch.stack(alphas, dim=1)  # [B, T, U+1]
    b = torch.arange(B)
    t_last = logit_lengths.long() - 1
    u_last = target_lengths.long()
    return -(alphas[b, t_last, u_last] + blank_lp[b, t_last, u_last])


def encode_text(text: str) -> list[int]:
    return [LABELS.index(c) for c in text]


def hyp_texts(result) -> list[str]:
    """model.transcribe() returns Hypothesis objects (or strings, or a (best, all) tuple on older NeMo)."""
    if isinstance(result, tuple):
        result = result[0]
    return [r.text if hasattr(r, "text") else str(r) for r in result]


def transcribe(model, paths: list[str]) -> list[str]:
    model.eval()
    texts = hyp_texts(model.transcribe([str(p) for p in paths], batch_size=len(paths), verbose=False))
    model.eval()  # transcribe() leaves the modules in training mode
    return texts


def greedy_with_margin(model, audio: np.ndarray, reference: str, max_symbols: int = 10) -> tuple[str, float]:
    """Greedy RNNT decode driven from the components (eval mode) and its safety margin.

    At every decision the acceptable outputs are blank and the next reference character (RNNT may emit a
    character on this frame or a later one; both alignments give the same text). The margin is the smallest
    gap, in nats, between the best acceptable output and the best unacceptable one over all decisions: how
    far the model is from a real transcription error (e.g. under fp16 rounding). Negative once it is wrong.
    """
    import torch

    model.eval()
    blank = model.decoder.blank_idx
    ref = encode_text(reference)
    with torch.no_grad():
        sig = torch.from_numpy(audio)[None]
        enc, enc_len = model.forward(input_signal=sig, input_signal_length=torch.tensor([len(audio)]))
        f = enc.transpose(1, 2)  # [1, T, D]
        g, state = model.decoder.predict(None, None, add_sos=False, batch_size=1)
        out: list[int] = []
        margin = float("inf")
        for t in range(int(enc_len[0])):
            for _ in range(max_symbols):
                lp = torch.log_softmax(model.joint.joint(f[:, t : t + 1], g), dim=-1)[0, 0, 0]
                good = [blank]
                if out == ref[: len(out)] and len(out) < len(ref):
                    good.append(ref[len(out)])
                bad = torch.ones_like(lp, dtype=torch.bool)
                bad[good] = False
                margin = min(margin, float(lp[good].max() - lp[bad].max()))
                k = int(lp.argmax())
                if k == blank:
                    break
                out.append(k)
                g, state = model.decoder.predict(torch.tensor([[k]]), state, add_sos=False, batch_size=1)
    if out != ref:
        margin = min(margin, -1.0)
    return "".join(LABELS[k] for k in out), margin


def quiet_nemo() -> None:
    from nemo.utils import logging as nemo_logging

    for name in ("nemo_logger", "lhotse"):
        logging.getLogger(name).setLevel(logging.ERROR)
    nemo_logging.setLevel(logging.ERROR)


# ----------------------------------------------------------------------------------------------------------
# Main
# ----------------------------------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=Path, default=Path("assets/demo"), help="output directory")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    ap.add_argument("--max-steps", type=int, default=1500)
    ap.add_argument("--eval-every", type=int, default=25)
    ap.add_argument("--patience", type=int, default=3, help="consecutive exact evaluations needed to stop")
    ap.add_argument(
        "--min-margin",
        type=float,
        default=3.0,
        help="also require every greedy decision on the clean clips to win by this many nats",
    )
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--n-aug", type=int, default=3, help="augmented copies per step (besides the clean clips)")
    ap.add_argument(
        "--max-labels-per-frame",
        type=int,
        default=3,
        help="during the first 100 steps, drop utterances whose label count exceeds this times frames",
    )
    args = ap.parse_args(argv)

    random.seed(args.seed)
    np.random.seed(args.seed)
    rng = np.random.default_rng(args.seed)

    import torch

    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)

    import nemo.collections.asr as nemo_asr
    from omegaconf import OmegaConf

    quiet_nemo()

    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)

    # 1. clips
    clips = []
    for text in PHRASES:
        assert all(c in LABELS for c in text), text
        wav = out / clip_name(text)
        synthesize(text, wav)
        clips.append({"audio": wav.name, "text": text})
        print(f"clip {wav.name}: {len(load_wav(wav)) / SAMPLE_RATE:.2f} s  '{text}'")
    paths = [out / c["audio"] for c in clips]
    clean = [load_wav(p) for p in paths]
    targets_all = [encode_text(c["text"]) for c in clips]

    expected = [c["text"] for c in clips]
    # fixed augmented copies never used for training (their own RNG): checks it is not only bit-exact memorisation
    held_rng = np.random.default_rng(args.seed + 1000)
    heldout = [(augment(a, held_rng), t) for a, t in zip(clean, expected, strict=True) for _ in range(2)]

    # 2. model
    model = nemo_asr.models.EncDecRNNTModel(cfg=OmegaConf.create(model_config()))
    blank = model.decoder.blank_idx
    assert blank == len(LABELS), blank
    assert model.joint.fuse_loss_wer and model.joint.loss is not None and model.joint.wer is not None
    n_params = sum(p.numel() for p in model.parameters())
    print(f"model: {n_params:,} parameters, blank id {blank}")

    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, betas=(0.9, 0.98), weight_decay=1e-3)
    warmup = 30
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / warmup))

    # 3. train
    t0 = time.time()
    streak = 0
    texts: list[str] = []
    step = 0
    for step in range(1, args.max_steps + 1):
        model.train()
        batch_audio = list(clean)
        batch_tgt = list(targets_all)
        for _ in range(args.n_aug):
            i = int(rng.integers(len(clean)))
            batch_audio.append(augment(clean[i], rng))
            batch_tgt.append(targets_all[i])
        lens = torch.tensor([len(a) for a in batch_audio])
        sig = torch.zeros(len(batch_audio), int(lens.max()))
        for i, a in enumerate(batch_audio):
            sig[i, : len(a)] = torch.from_numpy(a)
        tlens = torch.tensor([len(t) for t in batch_tgt])
        tgt = torch.full((len(batch_tgt), int(tlens.max())), blank, dtype=torch.long)
        for i, t in enumerate(batch_tgt):
            tgt[i, : len(t)] = torch.tensor(t)

        enc, enc_len = model.forward(input_signal=sig, input_signal_length=lens)  # [B, D, T]
        dec, _, _ = model.decoder(targets=tgt, target_length=tlens)  # [B, H, U+1]
        logits = model.joint.joint(enc.transpose(1, 2), dec.transpose(1, 2))  # [B, T, U+1, V+1]
        log_probs = torch.log_softmax(logits, dim=-1)  # no-op if the joint already normalised (CPU, null)
        nll = rnnt_loss(log_probs, tgt, enc_len, tlens, blank)
        keep = torch.ones_like(nll, dtype=torch.bool)
        if step <= 100:  # early on, skip impossible/degenerate alignments (too many labels per frame)
            keep = tlens <= args.max_labels_per_frame * enc_len
        loss = (nll[keep] / tlens[keep]).mean()

        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
        opt.step()
        sched.step()

        if step % args.eval_every == 0 or step == args.max_steps:
            texts = transcribe(model, paths)
            ok = texts == expected
            streak = streak + 1 if ok else 0
            margin = min(greedy_with_margin(model, a, t)[1] for a, t in zip(clean, expected, strict=True))
            held_ok = sum(greedy_with_margin(model, a, t)[0] == t for a, t in heldout)
            print(
                f"step {step:4d}  loss/char {loss.item():.4f}  {time.time() - t0:6.1f} s  "
                f"{'EXACT' if ok else '     '}  margin {margin:5.2f}  held-out {held_ok}/{len(heldout)}  {texts}",
                flush=True,
            )
            if streak >= args.patience and held_ok == len(heldout) and margin >= args.min_margin:
                break
    train_s = time.time() - t0
    print(f"training: {step} steps, {train_s:.1f} s wall clock")

    # 4. save: the joint never left fused mode (joint.joint bypasses the checks) -- assert it is intact.
    model.eval()
    assert model.joint.fuse_loss_wer and model.joint.loss is not None and model.joint.wer is not None
    assert model.cfg.joint.fuse_loss_wer is True and model.cfg.joint.fused_batch_size == 4
    assert model.cfg.joint.log_softmax is None
    nemo_path = out / "demo-rnnt.nemo"
    model.save_to(str(nemo_path))
    (out / "clips.json").write_text(json.dumps(clips, indent=2) + "\n")

    # 5. verify the saved file the way a user would load it
    restored = nemo_asr.models.ASRModel.restore_from(str(nemo_path), map_location="cpu")
    restored.eval()
    final = transcribe(restored, paths)
    size_mb = nemo_path.stat().st_size / 1e6
    print(
        f"saved {nemo_path} ({size_mb:.2f} MB, {n_params:,} params, {type(restored).__name__}, "
        f"joint.fuse_loss_wer={restored.cfg.joint.fuse_loss_wer})"
    )
    all_ok = True
    for c, text, audio in zip(clips, final, clean, strict=True):
        ok = text == c["text"]
        all_ok &= ok
        own, margin = greedy_with_margin(restored, audio, c["text"])
        print(
            f"  {c['audio']:<26} expected '{c['text']}'  transcribe() '{text}'  {'ok' if ok else 'MISMATCH'}"
            f"  (component greedy {'agrees' if own == text else 'DIFFERS: ' + repr(own)}, min margin {margin:.2f})"
        )
    if size_mb >= 5:
        print("WARNING: .nemo is not under 5 MB")
    return 0 if all_ok else 1


if __name__ == "__main__":
    sys.exit(main())
