"""The StageDispatcher contract, run against every adapter of the port: Celery on a real
Valkey broker (read back from the broker's lists), the in-process dispatcher of the unit
tests (paused, so it only records) and the lane-recording fake. Each dispatch puts the job's
remaining stages in motion from the stage given, carrying the job id only; sending a job
twice is safe; any lane is accepted (past the last is the last)."""

import base64
import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis
from celery import Celery

from adapters.celery.dispatcher import CeleryDispatcher
from adapters.celery.topology import LANE_PRIORITIES, STAGE_QUEUES
from adapters.factory import no_dispatcher
from adapters.ports import StageDispatcher
from adapters.redis.queues import priority_lists
from domain.errors import ConfigurationError
from domain.status import STAGES, Stage
from tests.support.inline import InlineDispatcher

#: What was dispatched, oldest first: (job id, first stage, remaining stages, lane priority).
Observe = Callable[[], list[tuple[str, Stage, list[Stage], int | None]]]

_STAGE_OF_TASK = {spec.task_name: spec.stage for spec in STAGE_QUEUES.values()}


def _broker_messages(client: "redis.Redis") -> list[tuple[str, Stage, list[Stage], int | None]]:
    seen = []
    for spec in STAGE_QUEUES.values():
        for key in priority_lists(spec.queue):
            for raw in reversed(client.lrange(key, 0, -1)):  # LPUSH: the oldest is last
                envelope = json.loads(raw)
                args, kwargs, embed = json.loads(base64.b64decode(envelope["body"]))
                assert kwargs == {}
                assert all(s["args"] == args and not s["kwargs"] for s in embed["chain"])
                [job_id] = args
                chain = [_STAGE_OF_TASK[s["task"]] for s in reversed(embed["chain"])]
                seen.append((job_id, _STAGE_OF_TASK[envelope["headers"]["task"]], chain,
                             envelope["properties"].get("priority")))
    return seen


@pytest.fixture(params=["celery", "inline", "recording"])
def dispatcher(request: pytest.FixtureRequest) -> Iterator[tuple[StageDispatcher, Observe]]:
    if request.param == "celery":
        url = request.getfixturevalue("redis_url")
        client = redis.Redis.from_url(url)
        client.flushall()
        app = Celery("conversa-contract", broker=url, set_as_current=False)
        app.conf.update(task_serializer="json", accept_content=["json"],
                        broker_transport_options={"priority_steps": list(LANE_PRIORITIES)})
        yield CeleryDispatcher(app), lambda: _broker_messages(client)
        client.flushall()
        app.close()
    elif request.param == "inline":
        inline = InlineDispatcher(paused=True)

        def recorded() -> list[tuple[str, Stage, list[Stage], int | None]]:
            return [(job_id, stage, list(STAGES[STAGES.index(stage) + 1:]), None)
                    for job_id, stage in inline.dispatched]

        yield inline, recorded
    else:
        calls: list[tuple[str, Stage, int]] = []

        class Recording:
            def dispatch(self, job_id: str, stage: Stage, lane: int = 0) -> None:
                calls.append((job_id, stage, lane))

        yield Recording(), lambda: [(j, s, list(STAGES[STAGES.index(s) + 1:]), None)
                                    for j, s, _ in calls]


def test_implements_the_port(dispatcher: tuple[StageDispatcher, Any]) -> None:
    assert isinstance(dispatcher[0], StageDispatcher)


@pytest.mark.parametrize("stage", [Stage.STORE, Stage.EXTRACT, Stage.INDEX])
def test_the_remaining_stages_start_at_the_stage_given(
        dispatcher: tuple[StageDispatcher, Observe], stage: Stage) -> None:
    sender, observe = dispatcher
    sender.dispatch("job-1", stage)
    [(job_id, first, remaining, _)] = observe()
    assert (job_id, first) == ("job-1", stage)
    assert remaining == list(STAGES[STAGES.index(stage) + 1:])


def test_sending_a_job_twice_is_safe(dispatcher: tuple[StageDispatcher, Observe]) -> None:
    sender, observe = dispatcher
    sender.dispatch("job-2", Stage.STORE)
    sender.dispatch("job-2", Stage.STORE)
    assert [(j, s) for j, s, _, _ in observe()] == [("job-2", Stage.STORE)] * 2


def test_every_lane_is_accepted_and_a_lower_lane_is_not_behind_a_higher_one(
        dispatcher: tuple[StageDispatcher, Observe]) -> None:
    sender, observe = dispatcher
    for lane in (0, 1, len(LANE_PRIORITIES) - 1, 99, -5):
        sender.dispatch(f"lane-{lane}", Stage.STORE, lane)
    priorities = {job_id: priority for job_id, _, _, priority in observe()}
    assert set(priorities) == {"lane-0", "lane-1", f"lane-{len(LANE_PRIORITIES) - 1}",
                               "lane-99", "lane--5"}
    if priorities["lane-0"] is not None:  # a broker that orders by priority (Celery)
        assert priorities["lane-0"] == priorities["lane--5"] == LANE_PRIORITIES[0]
        assert priorities["lane-99"] == LANE_PRIORITIES[-1]
        assert priorities["lane-0"] < priorities["lane-1"] <= priorities["lane-99"]


def test_a_process_without_a_broker_refuses_to_dispatch() -> None:
    with pytest.raises(ConfigurationError, match="no broker"):
        no_dispatcher().dispatch("job-3", Stage.STORE)
