"""The engine process's transport: ordered events, race-free cancel and restart (no NeMo: a scripted engine).

The child runs `tests/scripted_engine.py` (the real `Engine` numbering and enveloping, `run_steps` scripted), so
each test can force the situation it is about: a burst of events from two concurrent calls, cancels landing while
a call ends, a child killed mid-call and replaced. One test starts the real engine child and reads its modules.
"""

from __future__ import annotations

import contextlib
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from rnnt_tui.app.engine import Envelope
from rnnt_tui.app.engine_process import EngineStoppedError, ProcessEngine
from rnnt_tui.core.errors import CancelledError
from rnnt_tui.core.pipeline.events import Progress

SCRIPTED = "scripted_engine:ScriptedEngine"


@pytest.fixture
def engine(monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setenv("PYTHONPATH", str(Path(__file__).parent))  # the child finds scripted_engine.py
    made = ProcessEngine(SCRIPTED)
    yield made
    made.stop()


def texts(envelopes: list[Envelope], call: int) -> list[str]:
    return [e.event.text for e in envelopes if e.call == call and isinstance(e.event, Progress)]


class Inbox:
    """Where the reader posts envelopes (from its one thread), as the app's message queue would get them."""

    def __init__(self) -> None:
        self.got: list[Envelope] = []
        self.lock = threading.Lock()

    def __call__(self, envelope: Envelope) -> None:
        with self.lock:
            self.got.append(envelope)

    def wait_for(self, kind: str, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while not any(type(e.event).__name__ == kind for e in self.got):
            assert time.monotonic() < deadline, f"no {kind}"
            time.sleep(0.01)


def test_a_burst_from_two_calls_arrives_in_order_and_whole(engine: ProcessEngine) -> None:
    inbox = Inbox()
    engine.open_checkpoint(0, inbox, threading.Event(), call=0)  # type: ignore[arg-type]
    threads = [threading.Thread(target=engine.run_steps, args=(["burst:400"], inbox, threading.Event()),
                                kwargs={"call": call}) for call in (1, 2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    seqs = [e.seq for e in inbox.got]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)  # one order, as the engine numbered it
    for call in (1, 2):
        assert texts(inbox.got, call) == [str(i) for i in range(400)]  # nothing lost, nothing reordered within a call


def test_cancel_mid_step_ends_that_call_only_and_the_engine_lives(engine: ProcessEngine) -> None:
    inbox, cancel = Inbox(), threading.Event()
    errors: list[BaseException] = []

    def blocked() -> None:
        try:
            engine.run_steps(["block"], inbox, cancel, call=1)
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    t = threading.Thread(target=blocked)
    t.start()
    inbox.wait_for("StepStarted")
    cancel.set()
    t.join(30)
    assert len(errors) == 1 and isinstance(errors[0], CancelledError)
    assert not any(e.call == 1 and type(e.event).__name__ == "StepFinished" for e in inbox.got)
    for n in range(40):  # cancels that land while their call is ending (the child's check-then-index race)
        flag = threading.Event()
        flag.set()
        with contextlib.suppress(CancelledError):
            engine.run_steps(["block"] if n % 2 else ["burst:3"], inbox, flag, call=100 + n)
    engine.run_steps(["burst:2"], inbox, threading.Event(), call=999)
    assert texts(inbox.got, 999) == ["0", "1"]
    proc = engine._proc
    assert proc is not None and proc.poll() is None


def test_a_child_killed_mid_call_fails_that_call_only_and_a_new_one_serves_the_next(engine: ProcessEngine) -> None:
    for round_ in range(4):
        inbox = Inbox()
        errors: list[BaseException] = []

        def hung(inbox: Inbox = inbox, errors: list[BaseException] = errors) -> None:
            try:
                engine.run_steps(["hang"], inbox, threading.Event(), call=1)
            except BaseException as exc:  # noqa: BLE001
                errors.append(exc)

        t = threading.Thread(target=hung)
        t.start()
        inbox.wait_for("StepStarted")
        proc = engine._proc
        assert proc is not None
        proc.kill()
        proc.wait()
        with pytest.raises(EngineStoppedError):  # the model went with the child: no fresh child pretends
            engine.run_steps(["burst:1"], inbox, threading.Event(), call=3)
        # an open at once, while the old child's reader may still be winding down: goes to a replacement child
        engine.open_checkpoint(5, inbox, threading.Event(), call=2)  # type: ignore[arg-type]
        t.join(30)
        assert len(errors) == 1 and isinstance(errors[0], EngineStoppedError), (round_, errors)
        assert texts(inbox.got, 2) == [str(i) for i in range(5)]
        assert engine._proc is not proc
        seqs = [e.seq for e in inbox.got]
        assert seqs == sorted(seqs)  # the replacement numbers after its predecessor


def test_the_engine_child_never_imports_textual(engine: ProcessEngine) -> None:
    engine.check_runtimes()  # the real core's runtime check, in the child
    modules = engine.invoke("modules")
    assert "rnnt_tui.app.engine" in modules and "rnnt_tui.core.pipeline.pipeline" in modules
    assert not [m for m in modules if m.split(".")[0] in ("textual", "rich")]


def test_a_call_sent_ahead_is_adopted_by_the_same_call_and_dropped_for_another(engine: ProcessEngine) -> None:
    """`send_ahead` (a bundle's first open, sent while the app builds its first frame): when the app makes the same
    call it gets that call's events - the ones the child produced for it, whole and in order, under the app's call
    id - and its result; when the app makes another call first, none of the earlier call's events reach it."""
    from rnnt_tui.app.engine_process import NUMBERS_PER_CHILD

    engine.send_ahead("open_checkpoint", 300)
    inbox = Inbox()
    engine.open_checkpoint(300, inbox, threading.Event(), call=7)  # type: ignore[arg-type]
    assert texts(inbox.got, 7) == [str(i) for i in range(300)] and {e.call for e in inbox.got} == {7}
    assert inbox.got[0].seq == NUMBERS_PER_CHILD + 1  # the first events this child numbered: not sent twice

    engine.send_ahead("open_checkpoint", 50)
    other = Inbox()
    engine.open_checkpoint(4, other, threading.Event(), call=8)  # type: ignore[arg-type]
    assert texts(other.got, 8) == ["0", "1", "2", "3"] and {e.call for e in other.got} == {8}
    engine.run_steps(["burst:2"], other, threading.Event(), call=9)  # after the dropped call's events, if any
    assert texts(other.got, 9) == ["0", "1"] and {e.call for e in other.got} == {8, 9}
