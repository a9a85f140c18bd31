"""The app's state and engine client without Textual: events fold into plain state; stale ones are dropped.

The client decides, as each event is handled, whether it still counts (in order, from a live call, about the
session on screen or a newer one); the state applies what it accepts. A cancelled run's late `StepFinished`
never lands on the session that replaced it.
"""

from __future__ import annotations

import inspect
import json
import subprocess
import sys
import threading
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from rnnt_tui.app.choices import RuntimeChoices
from rnnt_tui.app.client import EngineClient
from rnnt_tui.app.engine import Envelope
from rnnt_tui.app.state import AppState
from rnnt_tui.core.components import STEPS
from rnnt_tui.core.fuse import VALIDATION, JointMode
from rnnt_tui.core.names import Status
from rnnt_tui.core.pipeline import events as ev
from rnnt_tui.core.pipeline.facts import FuseView
from rnnt_tui.core.stats.results import StepResult
from rnnt_tui.core.summary import read_summary
from rnnt_tui.paths import demo_checkpoint


class NoEngine:
    """The client's engine when a test only feeds it envelopes (nothing is called)."""

    active = 0

    def stop(self) -> None:
        pass


def client() -> EngineClient:
    return EngineClient(NoEngine(), lambda envelope: None)  # type: ignore[arg-type]


def view(name: str = "a.wav") -> ev.SessionView:
    summary = read_summary(demo_checkpoint())
    mode = JointMode(fuse_loss_wer=False, fused_batch_size=None, log_softmax=False)
    audio = SimpleNamespace(path=Path(name), duration_s=1.0)
    return ev.SessionView(demo_checkpoint(), summary, audio, "NeMo / PyTorch", "ONNX Runtime", None,  # type: ignore[arg-type]
                          FuseView(VALIDATION, mode, mode, "logits"), 5, 1)


def state() -> AppState:
    return AppState(demo_checkpoint(), Path("a.wav"), RuntimeChoices())


class Feed:
    """Envelopes numbered as one engine numbers them, handled as the app handles them."""

    def __init__(self) -> None:
        self.client, self.state, self.seq = client(), state(), 0

    def envelope(self, call: int, session: int, event: ev.Event) -> Envelope:
        self.seq += 1
        return Envelope(call, session, self.seq, event)

    def handle(self, envelope: Envelope) -> bool:
        accepted = self.client.accept(envelope)
        if accepted:
            self.state.apply(envelope.event)
        return accepted


def test_a_cancelled_runs_late_result_never_overwrites_the_next_session() -> None:
    feed = Feed()
    first = feed.client.begin("model")
    assert feed.handle(feed.envelope(first.id, 1, ev.SessionReady(view("one.wav"))))
    steps = feed.client.begin("steps")
    assert feed.handle(feed.envelope(steps.id, 1, ev.StepStarted("encoder")))
    late = feed.envelope(steps.id, 1, ev.StepFinished("encoder", StepResult("encoder", Status.DONE)))

    feed.client.cancel(("steps",))  # Esc: the run's flag is set and its events are stale from now on
    assert steps.cancel.is_set()
    feed.state.cancel_running()
    assert feed.state.steps["encoder"] == Status.CANCELLED

    second = feed.client.begin("model")
    ready = feed.envelope(second.id, 2, ev.SessionReady(view("two.wav")))
    assert feed.handle(ready)
    assert not feed.handle(late)  # the cancelled run's result, arriving after the new session
    assert feed.state.results == {} and feed.state.audio_path == Path("two.wav")
    assert feed.state.steps == dict.fromkeys(STEPS, Status.PENDING)


def test_events_of_an_older_session_and_out_of_order_events_are_dropped() -> None:
    feed = Feed()
    model, steps = feed.client.begin("model"), feed.client.begin("steps")
    old = feed.envelope(steps.id, 1, ev.StepFinished("joint", StepResult("joint", Status.DONE)))
    assert feed.handle(feed.envelope(model.id, 2, ev.SessionReady(view())))
    assert not feed.handle(old)  # about session 1, and numbered before the session-2 event it follows
    newer = feed.envelope(steps.id, 2, ev.StepStarted("joint"))
    older = feed.envelope(steps.id, 2, ev.StepFinished("joint", StepResult("joint", Status.DONE)))
    assert feed.handle(older)
    assert not feed.handle(newer)  # an envelope numbered before the last one applied
    assert feed.state.steps["joint"] == Status.DONE


def test_a_newer_call_of_the_same_kind_replaces_the_old_one() -> None:
    feed = Feed()
    assert feed.handle(feed.envelope(feed.client.begin("model").id, 1, ev.SessionReady(view())))
    old = feed.client.begin("steps")
    new = feed.client.begin("steps")  # r pressed again: the first run is replaced
    assert old.cancel.is_set() and not new.cancel.is_set()
    assert feed.client.is_stale(old.id) and not feed.client.is_stale(new.id)
    assert not feed.handle(feed.envelope(old.id, 1, ev.StepStarted("encoder")))
    assert feed.handle(feed.envelope(new.id, 1, ev.StepStarted("preprocessor")))
    feed.client.end(new)
    assert not feed.client.live("steps")


def test_the_state_folds_a_whole_open_run_and_mode_switch() -> None:
    feed = Feed()
    s = feed.state
    call = feed.client.begin("model").id
    summary = read_summary(demo_checkpoint())
    feed.handle(feed.envelope(call, 1, ev.SummaryRead(demo_checkpoint(), summary)))
    assert s.steps == dict.fromkeys(STEPS, Status.PREPARING) and s.model_status == "restoring with NeMo…"
    feed.handle(feed.envelope(call, 1, ev.Progress("prepare", "exporting", 0.5)))
    assert s.step_extra["joint"] == " 50%" and s.activity == ("exporting", 0.5)
    feed.handle(feed.envelope(call, 1, ev.SessionReady(view())))
    assert s.session is not None and s.labels["candidate"] == "ONNX Runtime" and s.model_status == "restored · ready"
    run = feed.client.begin("steps").id
    for name in STEPS:
        feed.handle(feed.envelope(run, 1, ev.StepStarted(name)))
        assert s.steps[name] == Status.RUNNING
        feed.handle(feed.envelope(run, 1, ev.StepFinished(name, StepResult(name, Status.DONE))))
    assert s.todo() == [] and all(s.steps[n] == Status.DONE for n in STEPS)
    fuse = FuseView("as-saved", s.session.fuse.saved, s.session.fuse.current, "raises TypeError")  # type: ignore[union-attr]
    feed.handle(feed.envelope(feed.client.begin("fuse").id, 1, ev.FuseChanged(fuse)))
    feed.handle(feed.envelope(feed.client.begin("fuse").id, 1, ev.StepCleared("joint")))
    assert s.joint_mode == "as-saved" and s.probe == "raises TypeError"
    assert s.todo() == ["joint"] and s.steps["joint"] == Status.PENDING
    s.revert()  # a failed pick afterwards: the session's own results come back
    assert s.steps["encoder"] == Status.DONE and s.steps["joint"] == Status.PENDING


def test_the_client_runs_a_call_with_its_flag_and_id() -> None:
    seen: list[Any] = []

    class Recording(NoEngine):
        def track(self) -> Any:
            import contextlib

            return contextlib.nullcontext()

        def run_steps(self, names: list[str], post: Any, cancel: threading.Event, call: int = 0) -> str:
            seen.append((names, post, cancel, call))
            return "ran"

    sink = print
    c = EngineClient(Recording(), sink)  # type: ignore[arg-type]
    call = c.begin("steps")
    with c.running(call):
        assert c.run(call, "run_steps", ["encoder"]) == "ran"
    assert seen == [(["encoder"], sink, call.cancel, call.id)] and not c.live("steps")


def test_every_core_event_has_a_message_and_a_handler() -> None:
    """A new or renamed event cannot go unshown: each has its own message class and `on_<name>` handler."""
    from rnnt_tui.app import messages as msg
    from rnnt_tui.app.app import RnntApp
    from rnnt_tui.core.corpus import runner
    from rnnt_tui.core.stream import compare, windows

    def subclasses(module: Any) -> set[type]:
        return {c for _, c in inspect.getmembers(module, inspect.isclass)
                if issubclass(c, ev.Event) and c is not ev.Event and c.__module__ == module.__name__}

    mapping = {**msg.PIPELINE_MESSAGES, **msg.corpus_messages(), **msg.stream_messages()}
    assert subclasses(ev) | subclasses(runner) | subclasses(compare) | subclasses(windows) == set(mapping)
    for event_type, message_type in mapping.items():
        assert message_type.__name__ == event_type.__name__
        handler = getattr(RnntApp, f"on_{message_type.handler_name.removeprefix('on_')}", None)
        assert callable(handler), message_type


def test_state_and_client_load_without_textual() -> None:
    code = ("import sys, json; import rnnt_tui.app.state, rnnt_tui.app.client, rnnt_tui.app.engine; "
            "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in ('textual', 'rich', 'torch'))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60).stdout
    assert json.loads(out) == []


@pytest.fixture
def bad_state_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    monkeypatch.setenv("RNNT_TUI_STATE_DIR", str(blocker / "state"))  # a directory cannot be made in a file
    return blocker


def test_recent_save_raises_instead_of_swallowing(bad_state_dir: Path) -> None:
    from rnnt_tui.app.recent import Recent

    recent = Recent()
    recent.add("checkpoints", demo_checkpoint())
    with pytest.raises(OSError):
        recent.save()


def fake_bundle(tmp_path: Path, packages: bool, onnx: bool) -> Path:
    """A folder with only the `bundle.json` keys the app reads before opening it (what it holds, its clips)."""
    bundle = tmp_path / f"bundle-{packages}-{onnx}"
    bundle.mkdir()
    (bundle / "bundle.json").write_text(json.dumps({
        "packages": {"fp32": {"dir": "packages/fp32"}} if packages else {},
        "onnx": {"dir": "onnx"} if onnx else None, "clips": [{"index": 0, "name": "recorded.wav"}]}))
    return bundle


def test_a_bundle_opens_with_what_it_can_replay(tmp_path: Path) -> None:
    from rnnt_tui.app.bundle_choice import choose

    packages = fake_bundle(tmp_path, packages=True, onnx=False)
    chosen = choose(packages, None)
    assert chosen is not None and chosen.against == ("coreml" if sys.platform == "darwin" else "mil")
    assert chosen.clip == Path("recorded.wav") and chosen.note is None  # the header names the bundle's clip
    asked_onnx = choose(packages, "onnx")
    assert asked_onnx is not None and asked_onnx.against == chosen.against
    assert asked_onnx.note is not None and "ONNX Runtime" in asked_onnx.note  # said, never switched silently
    both = choose(fake_bundle(tmp_path, packages=True, onnx=True), "onnx")
    assert both is not None and both.against == "onnx" and both.note is None
    assert choose(demo_checkpoint(), "onnx") is None  # a checkpoint: nothing to choose


def test_choosing_for_a_checkpoint_loads_no_numpy() -> None:
    code = ("import sys; from rnnt_tui.app.bundle_choice import choose; from rnnt_tui.paths import demo_checkpoint; "
            "assert choose(demo_checkpoint(), None) is None; print('numpy' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60).stdout
    assert out.strip() == "False"  # the first frame still comes before numpy


def test_where_the_candidate_runs_is_said_once_and_only_for_the_session_it_came_from() -> None:
    """The header's candidate: the label where it names its runtime already (Core AI on Linux), else the label
    with `describe()["runs_on"]` (Core AI on a Mac); a candidate chosen since the session was built is not given
    the old one's runtime."""
    from dataclasses import replace

    from rnnt_tui.core.options import RuntimeOptions
    from rnnt_tui.core.pipeline.request import Request

    s = AppState(demo_checkpoint(), Path("a.wav"), RuntimeChoices(against="coreai", packages_dir="/assets"))
    linux = replace(view(), candidate_label="Core AI (Apple Core AI runtime, Linux CPU)",
                    candidate_runs_on="Apple Core AI runtime, Linux CPU",
                    options=Request(demo_checkpoint(), Path("a.wav"), "coreai",
                                    RuntimeOptions(packages_dir="/assets")))
    s.apply(ev.SessionReady(linux))
    assert s.runs_on() == "Apple Core AI runtime, Linux CPU"
    assert s.candidate_shown() == "Core AI (Apple Core AI runtime, Linux CPU)" and s.packages_dir() == "/assets"
    mac = replace(linux, candidate_label="Core AI (macOS: OS framework on 27+, else the bundled runtime)",
                  candidate_runs_on="Core AI framework, macOS 27.0, hardware chosen by Core AI")
    s.apply(ev.SessionReady(mac))
    assert s.candidate_shown() == "Core AI (Core AI framework, macOS 27.0, hardware chosen by Core AI)"
    s.options, s.labels["candidate"] = replace(s.options, against="mil"), "Core ML program, MIL interpreter"
    assert s.runs_on() == s.candidate_shown() == "Core ML program, MIL interpreter"


def test_the_drift_search_takes_what_is_out_of_tolerance_else_the_selected_component() -> None:
    from rnnt_tui.core.pipeline.pipeline import RuntimeChoice

    s = AppState(demo_checkpoint(), Path("a.wav"), RuntimeChoices(against="coreai"))
    assert s.drift_refusal() is None
    assert s.drift_components("joint") == ["joint"] and s.drift_components("decode") == []
    s.results = {"encoder": StepResult("encoder", Status.MISMATCH), "joint": StepResult("joint", Status.DONE)}
    assert s.drift_components("joint") == ["encoder"]
    s.availability["coreai"] = RuntimeChoice("coreai", "Core AI", ok=False, reason="no wheel here")
    assert s.drift_refusal() == "Core AI cannot run here: no wheel here"
    s.availability.clear()
    s.options = RuntimeChoices(against="mil")
    s.labels["candidate"] = s.candidate_fallback()
    refusal = s.drift_refusal()
    assert refusal is not None and "the open candidate is Core ML program, MIL interpreter" in refusal
