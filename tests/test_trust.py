"""The trust boundary: what reading a checkpoint may do, and what only restoring it does.

Reading a summary opens the archive read-only and parses one YAML file: under a Python audit hook it must open
nothing for writing, create no file or folder, import, exec, unpickle or spawn nothing - for a good archive and
for hostile ones. Restoring goes through NeMo's loader (which unpickles): a weights file holding pickled code is
refused by torch's weights-only loader and the code does not run. Anything of ours that extracts uses tarfile's
`data` filter into a private temp dir that is gone afterwards. The README says what is trusted.
"""

from __future__ import annotations

import json
import pickle
import subprocess
import sys
import textwrap
from pathlib import Path

import badfiles
import pytest

from rnnt_tui.cli import main
from rnnt_tui.exit_codes import ExitCode

README = Path(__file__).resolve().parent.parent / "README.md"

AUDITED = textwrap.dedent("""
    import json, sys
    from rnnt_tui.core.errors import BadInputError
    from rnnt_tui.core.summary import read_summary

    paths = sys.argv[1:]
    read_summary(paths[0])  # warm up: every lazy import of the reading path happens here, before the hook
    events = []
    WATCHED = ("exec", "import", "compile", "pickle.find_class", "marshal.loads", "subprocess.Popen", "os.system",
               "os.exec", "os.posix_spawn", "os.spawn", "os.fork", "os.mkdir", "os.rename", "os.remove",
               "os.rmdir", "os.symlink", "os.link", "os.truncate", "os.chmod", "shutil.", "tempfile.", "ctypes.")

    def hook(event, args):
        if event == "open" and len(args) > 1 and isinstance(args[1], str) and any(m in args[1] for m in "wax+"):
            events.append(f"open for writing {args[0]}")
        elif event == "open" and len(args) > 2 and isinstance(args[2], int) and args[2] & 0o3:  # os.open flags
            events.append(f"os.open for writing {args[0]}")
        elif event.startswith(WATCHED):
            events.append(event)

    sys.addaudithook(hook)
    outcome = {}
    for path in paths:
        try:
            outcome[path] = read_summary(path).model_class
        except BadInputError as exc:
            outcome[path] = "refused: " + exc.problem
    print(json.dumps({"events": events, "outcome": outcome}))
""")


def test_reading_a_summary_writes_imports_and_runs_nothing(checkpoints: dict[str, Path], tmp_path: Path) -> None:
    good = checkpoints["rnnt-char"]
    cases = {c.name: c for c in badfiles.checkpoint_cases(tmp_path / "bad", good, checkpoints["ctc"])}
    hostile = [cases[name].path for name in ("config-python-tag", "dotdot", "absolute", "symlink", "hardlink",
                                              "device", "truncated-weights", "random", "unknown-class")]
    paths = [good, checkpoints["tdt"], checkpoints["hybrid"], *hostile]
    out = subprocess.run([sys.executable, "-c", AUDITED, *map(str, paths)], capture_output=True, text=True,
                         timeout=120, check=True, cwd=tmp_path)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["events"] == [], result["events"]
    outcome = result["outcome"]
    assert outcome[str(good)] == "EncDecRNNTModel" and outcome[str(checkpoints["tdt"])] == "EncDecRNNTBPEModel"
    assert outcome[str(cases["unknown-class"].path)] == "NoSuchRNNTModel"  # read, not imported: NeMo would try
    for path in hostile[:-1]:
        assert outcome[str(path)].startswith("refused: "), (path, outcome[str(path)])
    assert not (tmp_path / "PWNED").exists()


def _pickled_code(marker: Path) -> bytes:
    """A pickle that calls os.mkdir(marker) when unpickled by a loader that trusts globals."""
    path = str(marker).encode()
    return (b"\x80\x02cposix\nmkdir\nq\x00X" + len(path).to_bytes(4, "little") + path + b"q\x01\x85q\x02Rq\x03.")


def test_pickled_code_in_the_weights_is_refused_and_never_runs(capsys: pytest.CaptureFixture[str],
                                                               checkpoints: dict[str, Path], clip: Path,
                                                               tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    marker = tmp_path / "code-ran"
    payload = _pickled_code(marker)
    pickle.loads(payload)  # our own harmless payload: proves that a trusting unpickler would run it
    assert marker.is_dir()
    marker.rmdir()
    monkeypatch.delenv("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", raising=False)
    evil = badfiles.repack(checkpoints["rnnt-char"], tmp_path / "evil.nemo", replace={badfiles.WEIGHTS: payload})
    code = main(["run", str(evil), str(clip), "--runs", "1", "--warmup", "0"])
    err = "".join(capsys.readouterr().err.split())
    assert code == ExitCode.BAD_INPUT and "evil.nemo" in err and "pickledcode,whichisrefused" in err
    assert not marker.exists(), "the pickled code ran"


def test_readme_says_what_is_trusted() -> None:
    text = " ".join(README.read_text().split())
    assert "Reading a summary never executes anything from the archive" in text
    assert "only `model_config.yaml` is parsed, with a safe YAML loader" in text
    assert "only open checkpoints you trust" in text
    assert "are refused before NeMo sees them" in text
