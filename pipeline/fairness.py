"""Fair order across tenants: a job's lane follows from how many jobs its tenant has in flight.

A tenant with few jobs in flight gets the first lane, a tenant with a backlog the later ones,
so a small tenant's job goes ahead of a bulk tenant's backlog at every stage: the dispatcher
gives every message of the job (each stage, each retry) the lane's broker priority. Nothing is
held back and no message is moved, so at-least-once delivery, the reconciler, retries and the
visibility timeout work as before; a lane only decides which waiting message a free worker
takes first. Within a lane the order stays first in, first out.
"""

from bisect import bisect_right

from pipeline.bootstrap import Services

#: A tenant with at most ``LANE_BOUNDS[i]`` jobs in flight (the new job included) gets lane
#: ``i``; one with more than the last bound gets the last lane.
LANE_BOUNDS: tuple[int, ...] = (2, 8, 32)
LANES = len(LANE_BOUNDS) + 1
#: A tenant's jobs in flight are counted up to this many, which is all a lane needs: one
#: query on the status index per dispatch, of at most this many ids.
COUNT_WINDOW = LANE_BOUNDS[-1] + 1


def lane_for(in_flight: int) -> int:
    """The lane (0 is served first) of a job whose tenant has ``in_flight`` jobs in flight."""
    return bisect_right(LANE_BOUNDS, in_flight - 1)


def tenant_lane(services: Services, tenant: str) -> int:
    """The lane for a job of ``tenant`` now: from its unfinished jobs (always 0 with
    ``worker.fair_lanes`` off)."""
    if not services.settings.worker.fair_lanes:
        return 0
    return lane_for(services.jobs.count_in_flight(tenant, COUNT_WINDOW))
