"""The bridge's own faults, injected into this process's bridge modules (`BridgeFaults`): polls that
die after recording an outcome or mid-request, an api that dies between cancel's write and its
publish, webhook preparation that fails before or after its row is written."""

from __future__ import annotations

import contextvars
import threading
from collections import Counter
from collections.abc import Callable
from contextlib import ExitStack
from typing import TYPE_CHECKING, Any

from bridge_local.fault_plan import MID_REQUEST_KILL_S, STOPPED, FaultMix, JobPlan

if TYPE_CHECKING:
    from bridge.store.job_record import JobRecord


class InjectedFault(RuntimeError):
    """A crash the fault run caused inside a bridge step (the process died there)."""


class BridgeFaults:
    """The bridge's own deaths and crashes, injected into this process's bridge modules.

    Every handler of the local stack runs in this process, so wrapping a module function here
    wraps it for the poll, api, reconcile and delivery functions alike. `install` wraps and
    registers the restore on `cleanup`; `doom` names a job's faults (right after its submit: its
    first poll comes 3 s later at the earliest); each fault strikes once. `injected` counts what
    was done, by kind.
    """

    def __init__(self, mix: FaultMix) -> None:
        self.mix = mix
        self.injected: Counter[str] = Counter()
        self._lock = threading.Lock()
        self._after_outcome: dict[str, str] = {}
        self._mid_request: set[str] = set()
        self._cancel_crash: set[str] = set()
        self._prepare: dict[str, str] = {}
        self._faulted_cancels: set[str] = set()  # a cancel that answered 5xx because of us

    # ------------------------------------------------------------------ what the run tells it

    def doom(self, task_id: str, plan: JobPlan) -> None:
        with self._lock:
            if plan.after_outcome:
                self._after_outcome[task_id] = plan.after_outcome
            if plan.mid_request:
                self._mid_request.add(task_id)
            if plan.cancel_after_s is not None and plan.cancel_crash:
                self._cancel_crash.add(task_id)
            if plan.prepare_failure:
                self._prepare[task_id] = plan.prepare_failure

    def cancel_was_faulted(self, task_id: str) -> bool:
        with self._lock:
            return task_id in self._faulted_cancels

    # ------------------------------------------------------------------ the wrappers

    def install(self, cleanup: ExitStack) -> BridgeFaults:
        from bridge.outcomes import lifecycle
        from bridge.store import jobs
        from bridge.upstream.router_one import RouterOneClient
        from bridge.webhooks import dispatch

        self._patch(cleanup, jobs, "record_outcome", self._record_outcome(jobs.record_outcome))
        self._patch(cleanup, RouterOneClient, "status", self._status(RouterOneClient.status))
        self._patch(cleanup, lifecycle, "_publish", self._cancel_publish(lifecycle._publish))
        self._patch(cleanup, dispatch, "prepare_delivery", self._prepare_delivery(dispatch.prepare_delivery))
        return self

    @staticmethod
    def _patch(cleanup: ExitStack, owner: Any, name: str, replacement: Any) -> None:
        original = owner.__dict__[name]
        setattr(owner, name, replacement)
        cleanup.callback(setattr, owner, name, original)

    def _count(self, kind: str) -> None:
        with self._lock:
            self.injected[kind] += 1

    def _take(self, faults: dict[str, str] | set[str], task_id: str) -> Any:
        """The fault planned for this job, spent (None if there is none, or it struck already)."""
        with self._lock:
            if isinstance(faults, set):
                found = task_id in faults
                faults.discard(task_id)
                return found or None
            return faults.pop(task_id, None)

    def _record_outcome(self, real: Callable[..., Any]) -> Callable[..., Any]:
        from bridge.clients import stepfunctions
        from bridge.outcomes.lifecycle import CANCEL_OWNER
        from bridge_local.emulator import LambdaFault
        from bridge_local.iam import running_as

        deaths = {
            fault.error_type: fault
            for fault in (LambdaFault.timed_out(), LambdaFault.out_of_memory(), LambdaFault.unknown())
        }

        def record_outcome(task_id: str, **kwargs: Any) -> Any:
            recorded = real(task_id, **kwargs)
            execution = kwargs.get("execution_id")
            if recorded is None or not execution or execution == CANCEL_OWNER:
                return recorded  # only a poll that holds the outcome dies here
            fault = self._take(self._after_outcome, task_id)
            if fault is None:
                return recorded
            if fault == STOPPED:
                # Gone for good (as a failed or stopped execution): only the outcome check publishes.
                # The stop comes from outside the function (an operator, a failed execution): not its role.
                with running_as(None):
                    stepfunctions().stop_execution(executionArn=execution, cause="fault run: stopped after its outcome")
                self._count("poll killed after recording, execution stopped")
                raise LambdaFault.timed_out()
            self._count(f"poll killed after recording ({fault})")
            death = deaths[fault]
            raise LambdaFault(death.error_type, str(death))

        return record_outcome

    def _status(self, real: Callable[..., Any]) -> Callable[..., Any]:
        from bridge_local.emulator import LambdaFault

        def status(client: Any, task_id: str) -> Any:
            if not self._take(self._mid_request, task_id):
                return real(client, task_id)
            # The request goes out in a thread of its own (with the poll's deadline); the
            # invocation dies while it is out, and whatever it brings back is lost.
            answered = threading.Event()
            result: list[Any] = []
            context = contextvars.copy_context()

            def request() -> None:
                try:
                    result.append(context.run(real, client, task_id))
                except Exception as exc:
                    result.append(exc)
                finally:
                    answered.set()

            threading.Thread(target=request, name="fault-run-abandoned-poll", daemon=True).start()
            if answered.wait(MID_REQUEST_KILL_S):
                self._count("poll not killed mid-request (answered first)")
                if isinstance(result[0], Exception):
                    raise result[0]
                return result[0]
            self._count("poll killed mid-request (Sandbox.Timedout)")
            raise LambdaFault.timed_out()

        return status

    def _cancel_publish(self, real: Callable[..., Any]) -> Callable[..., Any]:
        def publish(job: JobRecord, state_machine_arn: str) -> Any:
            task_id = job.task_id
            if self._take(self._cancel_crash, task_id):
                self._count("api died between cancel's write and its publish")
                with self._lock:
                    self._faulted_cancels.add(task_id)
                raise InjectedFault("fault run: the api died before publishing the cancel")
            return real(job, state_machine_arn)

        return publish

    def _prepare_delivery(self, real: Callable[..., Any]) -> Callable[..., Any]:
        from bridge.outcomes.events import event_kind
        from bridge.webhooks.dispatch import callback_wants

        def prepare_delivery(job: JobRecord, event: dict[str, Any], now: Any, **kwargs: Any) -> Any:
            if not callback_wants(job, event_kind(event)):
                return real(job, event, now, **kwargs)
            when = self._take(self._prepare, job.task_id)
            if when is None:
                return real(job, event, now, **kwargs)
            if when == "after":
                real(job, event, now, **kwargs)
            self._count(f"preparing the webhook failed in a poll invocation ({when} its row was written)")
            raise InjectedFault("fault run: preparing the webhook failed")

        return prepare_delivery
