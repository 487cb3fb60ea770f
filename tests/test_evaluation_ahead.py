"""The evaluation generates the next parts while it scores the last (experiments.Ahead, in_turn): parts
come back in order, generation runs ahead of the scoring, an error reaches the caller, and parts not yet
started are dropped when the caller stops early."""

import gc
import threading
import weakref

import pytest

from salsa.evaluation.experiments import Ahead, in_turn

WAIT = 10.0  # seconds; a broken overlap fails the test instead of hanging it


def test_parts_come_back_in_order_while_the_next_one_is_generated():
    second_started = threading.Event()
    threads = []

    def first():
        threads.append(threading.current_thread())
        return "a"

    def second():
        second_started.set()
        return "b"

    audios = in_turn(Ahead(), [first, second])
    assert next(audios) == "a"
    # the caller is "scoring" part 1: part 2 must be under way without being asked for
    assert second_started.wait(WAIT), "the second part did not start while the first was scored"
    assert next(audios) == "b"
    assert threads[0] is not threading.current_thread()


def test_a_generation_error_is_raised_to_the_caller():
    def broken():
        raise ValueError("no checkpoint")

    with pytest.raises(ValueError, match="no checkpoint"):
        next(in_turn(Ahead(), [broken]))


def test_parts_not_started_are_dropped_when_scoring_fails():
    ahead, started, release, ran = Ahead(), threading.Event(), threading.Event(), []

    def part(name, block=False):
        def make():
            ran.append(name)
            if block:
                started.set()
                release.wait(WAIT)
            return name

        return make

    def score_all():
        for audio in in_turn(ahead, [part("1"), part("2", block=True), part("3")]):
            assert started.wait(WAIT)  # part 2 is being generated, part 3 waits its turn
            raise RuntimeError(f"scoring {audio} failed")

    with pytest.raises(RuntimeError, match="scoring 1 failed"):
        score_all()
    release.set()
    done = ahead.submit(lambda: "later")  # the worker is free again, and part 3 never ran
    assert done.result(WAIT) == "later"
    assert ran == ["1", "2"]


def test_close_drops_everything_queued_but_the_running_part_and_ends_the_thread():
    ahead, started, release, ran, threads = Ahead(), threading.Event(), threading.Event(), [], []

    def running():
        threads.append(threading.current_thread())
        started.set()
        release.wait(WAIT)
        ran.append("running")
        return "done"

    first = ahead.submit(running)
    queued = [ahead.submit(lambda n=n: ran.append(n)) for n in range(2)]
    assert started.wait(WAIT)
    thread = threads[0]
    ahead.close()  # what evaluate() does at its end, or when an experiment fails
    release.set()
    assert first.result(WAIT) == "done"
    assert all(f.cancelled() for f in queued)
    thread.join(WAIT)
    assert not thread.is_alive()
    assert ran == ["running"]
    assert ahead.submit(lambda: "after").result(WAIT) == "after"  # a new thread, if it is used again
    ahead.close()


def test_a_part_is_let_go_once_read_and_close_waits_for_the_thread():
    class Audio:  # stands in for a part's arrays
        pass

    ahead, made, threads, second = Ahead(), [], [], threading.Event()

    def make():
        threads.append(threading.current_thread())
        if made:
            second.set()  # the worker is past the first part
        made.append(weakref.ref(audio := Audio()))
        return audio

    audios = in_turn(ahead, [make, make])
    first = next(audios)
    assert second.wait(WAIT)
    del first  # scored: nothing else may keep it, while the generator still waits for the next read
    gc.collect()
    assert made[0]() is None
    assert isinstance(next(audios), Audio)
    ahead.close(wait=True)  # what evaluate() does before the timed experiment
    assert not threads[0].is_alive()
