"""A fall belongs to the person: states ok -> pending -> fallen -> down -> ok, carried across track ids, held while
unseen, long lie, and no alarm on a body cut off by the frame edge. Constructed tracks with a scripted p(fall), so
that only the policy is under test (the model's accuracy is scripts/eval_falls.py)."""

from __future__ import annotations

import numpy as np
import pytest
from test_action import _cfg, _Scripted, standing

from fallwatch.action.persons import cut_off
from fallwatch.action.recognizer import FallRecognizer
from fallwatch.types import Poses, Tracks

FPS = 25
STANDING_BOX = [250, 90, 350, 470]  # 100 x 380: upright
LYING_BOX = [150, 400, 470, 480]  # 320 x 80: on the floor
FRAME = (640, 480)


class Run:
    """Feeds one scripted person frame by frame; keeps every frame's actions and every event change."""

    def __init__(self, **cfg):
        self.net = _Scripted()
        settings = {"stride": 1, "on_threshold": 0.7, "off_threshold": 0.4, "min_duration_s": 0.2, **cfg}
        self.rec = FallRecognizer(_cfg(**settings), self.net)
        self.frame, self.actions, self.changes = 0, [], []

    def step(self, p: float, tid: int | None, box=STANDING_BOX, kps=None, ended=(), frame_size=FRAME):
        self.net.p = p
        t = self.frame / FPS
        if tid is None:
            tracks, poses = Tracks.empty(ended=ended), Poses(np.zeros((0, 17, 3)))
        else:
            tracks = Tracks([tid], [box], [0.9], ended)
            poses = Poses((standing(t) if kps is None else kps)[None])
        acts, events = self.rec.update(self.frame, t, tracks, poses, frame_size)
        self.actions.append(acts)
        self.changes += events
        self.frame += 1
        return acts

    def fall(self, tid: int = 1) -> None:
        """2 s standing at p 0.1, then 0.6 s at p 0.95: an event opens after 0.2 s of it."""
        for _ in range(50):
            self.step(0.1, tid)
        for _ in range(15):
            self.step(0.95, tid)

    def state(self, i: int = -1) -> str:
        acts = self.actions[i]
        return acts.state[0] if len(acts) else (acts.held[0].state if acts.held else "absent")


def _events(run: Run) -> dict[int, list]:
    by_id: dict[int, list] = {}
    for e in run.changes:
        by_id.setdefault(e.event_id, []).append(e)
    return by_id


def test_down_until_the_person_gets_up():
    run = Run(getup_s=1.0)
    run.fall()
    assert run.state() == "fallen"
    for _ in range(50):  # lying, and the fall motion is over
        run.step(0.1, 1, LYING_BOX)
    assert run.state() == "down" and np.isfinite(run.actions[-1].down_since[0])
    for _ in range(20):  # upright again, but not yet for getup_s
        run.step(0.1, 1)
    assert run.state() == "down"
    for _ in range(10):
        run.step(0.1, 1)
    assert run.state() == "ok"
    (changes,) = _events(run).values()
    closed = changes[-1]
    assert closed.end_reason == "got_up" and closed.track_ids == (1,)
    # alarm at frame 55 (0.2 s after p crossed 0.7 at frame 50); upright from frame 115, for 1 s: closed at 140
    assert closed.alarm_frame == 55 and closed.end_frame == 140
    assert closed.end_time - closed.down_since == pytest.approx((140 - 55) / FPS)


def test_a_fallen_person_re_found_under_a_new_id_keeps_the_event():
    run = Run()
    run.fall(tid=1)
    for _ in range(3):  # missed by the detector at the landing
        run.step(0.95, None)
    assert run.state() == "fallen"  # held at the last position
    assert run.actions[-1].held[0].id == 1
    for _ in range(40):  # back under a new id, lying
        run.step(0.1, 2, LYING_BOX, ended=(1,) if run.frame == 70 else ())
    assert run.state() == "down" and run.actions[-1].event_id[0] == 1
    events = _events(run)
    assert list(events) == [1]  # one event, no second alarm
    assert events[1][-1].track_ids == (1, 2) and events[1][-1].end_frame is None


def test_someone_upright_near_the_fallen_person_does_not_inherit_the_fall():
    run = Run()
    run.fall(tid=1)
    run.step(0.1, None)
    acts = run.step(0.1, 2, [260, 80, 360, 470])  # a helper walks in, upright, where the faller was
    assert acts.state == ("ok",) and acts.held and acts.held[0].state == "fallen"


def test_unseen_down_person_stays_until_down_hold_then_left_view():
    run = Run(down_hold_s=2.0)
    run.fall()
    for _ in range(40):
        run.step(0.1, 1, LYING_BOX)
    for _ in range(2 * FPS):
        acts = run.step(0.1, None, ended=(1,) if run.frame == 120 else ())
        assert acts.held and acts.held[0].state == "down"
        assert acts.held[0].box.tolist() == LYING_BOX  # at the last position
    run.step(0.1, None)
    run.step(0.1, None)
    assert not run.actions[-1].held
    assert run.changes[-1].end_reason == "left_view"


def test_pending_when_lost_still_opens_the_event():
    """p(fall) 0.99 at the landing, the track vanishes before min_duration: the alarm is not dropped."""
    run = Run(min_duration_s=0.4)
    for _ in range(50):
        run.step(0.1, 1)
    for _ in range(4):  # 0.16 s pending, last seen low and wide
        run.step(0.99, 1, LYING_BOX)
    for _ in range(15):
        run.step(0.99, None)
    events = _events(run)
    assert len(events) == 1
    opened = next(iter(events.values()))[0]
    assert opened.start_frame == 50 and opened.alarm_frame == 60  # 0.4 s after the onset of p >= on


def test_pending_lost_while_upright_is_dropped():
    run = Run(min_duration_s=0.4)
    for _ in range(50):
        run.step(0.1, 1)
    for _ in range(4):
        run.step(0.99, 1)  # still upright when lost: someone walking out of view
    for _ in range(15):
        run.step(0.99, None)
    assert not run.changes


def test_long_lie_is_a_second_alert_on_the_same_event():
    run = Run(long_lie_s=3.0)
    run.fall()
    for _ in range(5 * FPS):
        run.step(0.1, 1, LYING_BOX)
    changes = _events(run)[1]
    assert [e.long_lie_time is not None for e in changes] == [False, True]
    assert changes[1].long_lie_time - changes[1].down_since == pytest.approx(3.0, abs=1.5 / FPS)
    assert changes[1].end_frame is None
    (closed,) = run.rec.finish(run.frame, run.frame / FPS)
    assert closed.end_reason == "end_of_input" and closed.long_lie_frame == changes[1].long_lie_frame


def _legs_cut_off(t: float) -> np.ndarray:
    kps = standing(t)
    kps[13:17, 2] = 0.05  # knees and ankles below the bottom edge: not seen
    return kps


@pytest.mark.parametrize("edge_gate", [True, False])
def test_upright_body_cut_by_the_frame_edge_raises_no_alarm(edge_gate):
    """Someone walking towards the camera out of the bottom of the frame, scored 0.95 by the model."""
    run = Run(edge_gate=str(edge_gate).lower())
    box = [250, 200, 350, 480]  # touches the bottom edge of a 640 x 480 frame
    for _ in range(50):
        run.step(0.1, 1, box, _legs_cut_off(run.frame / FPS))
    for _ in range(25):
        run.step(0.95, 1, box, _legs_cut_off(run.frame / FPS))
    assert bool(run.changes) is not edge_gate
    assert cut_off(np.array(box, float), _legs_cut_off(0), FRAME, 0.2)
    assert not cut_off(np.array(box, float), standing(0), FRAME, 0.2)  # knees and ankles seen: a whole body
    assert not cut_off(np.array(LYING_BOX, float), _legs_cut_off(0), FRAME, 0.2)  # wide: a person lying
    assert not cut_off(np.array(STANDING_BOX, float), _legs_cut_off(0), FRAME, 0.2)  # off the edge


def test_whole_body_at_the_same_place_still_alarms():
    run = Run()
    box = [250, 200, 350, 480]
    for _ in range(50):
        run.step(0.1, 1, box)
    for _ in range(25):
        run.step(0.95, 1, box)
    assert len(_events(run)) == 1


def test_confirm_low_waits_until_the_person_is_low():
    """With `confirm_low`, a person the model scores high while upright stays pending; low, the alarm opens."""
    run = Run(confirm_low="true")
    run.fall()  # 0.6 s at p 0.95, upright all along
    assert not run.changes and run.state() == "pending"
    run.step(0.95, 1, LYING_BOX)
    assert len(_events(run)) == 1 and run.state() in ("fallen", "down")
    assert run.changes[0].start_frame == 50  # the onset of p >= on, not the moment the person was low
