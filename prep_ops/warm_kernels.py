"""Kernels started ahead of the runbook that will use them: in a run of several runbooks, the next one's
kernel boots and imports what every runbook imports while the current one runs.

`Spares` holds the kernels one process started ahead. `prepare(env, cwd)` starts one, with exactly the
environment and folder a cold start would give that runbook, and has it import (silently, without
history, so the runbook's cells are still numbered 1..n and its namespace is untouched) prep_ops'
notebook and chart modules with pandas, SQLAlchemy, matplotlib, and ipython-sql. `take(env, cwd)` gives
papermill a kernel manager whose kernel is running (nbclient uses a given manager as is), or None for a
cold start: no kernel was started with that environment and folder, or it died, or its imports failed.
A client that did not create the manager neither stops its kernel nor its channels: `finish()` does,
as nbclient would have (a graceful shutdown: the kernel's atexit handlers run). `close()` kills every
kernel still held; a kernel also dies with the process that started it (a parent-death signal, and
ipykernel's own parent poller).
"""

import os
import signal
import time
from dataclasses import dataclass

from jupyter_client import KernelManager
from jupyter_client.blocking import BlockingKernelClient

from .orphans import die_with_parent

PRELOAD = "__import__('prep_ops.notebook'); __import__('prep_ops.charts'); __import__('sql')"
# what nbclient passes when papermill starts the runner's kernel: the runner's argument, in-memory history
ARGUMENTS = ("--IPKernelApp.log_level=ERROR", "--HistoryManager.hist_file=:memory:")
READY_SECONDS = 120.0  # a kernel not ready (imports done) by then is given up for a cold start


class _Manager(KernelManager):
    """A kernel manager whose clients are asynchronous (as nbclient needs) and remembered, so that
    `finish()` can stop the channels of the client papermill made."""

    def __init__(self, **kwargs):
        super().__init__(client_class="jupyter_client.asynchronous.AsyncKernelClient", **kwargs)
        self.made: list = []

    def client(self, **kwargs):
        made = super().client(**kwargs)
        self.made.append(made)
        return made


@dataclass
class _Spare:
    manager: _Manager
    env: dict
    cwd: str
    client: BlockingKernelClient
    preload: str  # the preload's message id
    ready: bool | None = None  # whether the preload ran without error (None: not known yet)


def _kill(manager: KernelManager) -> None:
    """The kernel and its process group gone, now (a spare has no state worth a graceful end)."""
    process = getattr(manager.provisioner, "process", None)
    if process is None:
        return
    try:
        os.killpg(process.pid, signal.SIGKILL)  # the kernel leads its own session (jupyter_client)
    except OSError:
        try:
            process.kill()
        except OSError:
            pass
    try:
        process.wait(timeout=10)
    except Exception:  # noqa: BLE001 (a kernel that cannot be reaped is still killed)
        pass
    try:
        manager.cleanup_resources()
    except Exception:  # noqa: BLE001 (its connection file; the kernel is gone either way)
        pass


def _stop_clients(manager: _Manager) -> None:
    for made in manager.made:
        try:
            made.stop_channels()
        except Exception:  # noqa: BLE001 (channels of a client whose loop is gone)
            pass


def _ready(spare: _Spare) -> bool:
    """Whether the spare's kernel is alive and ran the preload without error (waiting for it once)."""
    if spare.ready is None:
        spare.ready = _preloaded(spare)
    return spare.ready and spare.manager.is_alive()


def _preloaded(spare: _Spare) -> bool:
    deadline = time.monotonic() + READY_SECONDS
    try:
        while time.monotonic() < deadline:
            if not spare.manager.is_alive():
                return False
            try:
                reply = spare.client.get_shell_msg(timeout=1)
            except Exception:  # noqa: BLE001 (queue.Empty: not yet)
                continue
            if reply.get("parent_header", {}).get("msg_id") == spare.preload:
                return reply["content"].get("status") == "ok"
    finally:
        spare.client.stop_channels()
    return False


class Spares:
    """Kernels this process started ahead, each for the environment and folder it was started with."""

    def __init__(self):
        self._waiting: list[_Spare] = []
        self._handed: list[_Manager] = []
        self.taken = 0  # how many runbooks got a warm kernel (for tests and benchmarks)

    def prepare(self, env: dict, cwd: str) -> None:
        """Start a kernel for a runbook that will run with `env` in `cwd`; a failure leaves a cold start."""
        manager = _Manager(kernel_name="python3")
        try:
            # the parent-death signal is armed by this thread: kernels are started from a main thread
            manager.start_kernel(extra_arguments=list(ARGUMENTS), env=dict(env), cwd=str(cwd),
                                 preexec_fn=die_with_parent())
            client = manager.blocking_client()
            client.start_channels()
            preload = client.execute(PRELOAD, silent=True, store_history=False)
        except Exception:  # noqa: BLE001 (no kernel ahead: the runbook starts its own)
            _kill(manager)
            return
        self._waiting.append(_Spare(manager, dict(env), str(cwd), client, preload))

    def take(self, env: dict, cwd: str) -> KernelManager | None:
        """A started kernel's manager for a runbook with `env` in `cwd`, or None (start one cold)."""
        spare = next((s for s in self._waiting if s.env == env and s.cwd == str(cwd)), None)
        if spare is None:
            return None
        ready = _ready(spare)  # still held while it is waited for: an interrupt here leaves close() to kill it
        self._waiting.remove(spare)
        if not ready:
            _kill(spare.manager)
            return None
        self._handed.append(spare.manager)
        self.taken += 1
        return spare.manager

    def wait(self) -> None:
        """Wait until every kernel held has its imports done (or failed)."""
        for spare in self._waiting:
            _ready(spare)

    def finish(self, manager: KernelManager) -> None:
        """Shut down a kernel `take()` gave out, as nbclient shuts down its own: gracefully."""
        _stop_clients(manager)
        try:
            if manager.is_alive():
                manager.shutdown_kernel(now=False)
        except Exception:  # noqa: BLE001 (a shutdown that failed: kill it)
            pass
        _kill(manager)
        if manager in self._handed:
            self._handed.remove(manager)

    def close(self) -> None:
        """Kill every kernel still held: the spares no runbook took and any not finished."""
        for spare in self._waiting:
            if spare.ready is None:  # else its channels were stopped when it was found ready
                spare.client.stop_channels()
            _kill(spare.manager)
        for manager in self._handed:
            _kill(manager)
            _stop_clients(manager)
        self._waiting, self._handed = [], []

    def pids(self) -> list[int]:
        """The process ids of the kernels held (waiting or handed out)."""
        managers = [s.manager for s in self._waiting] + self._handed
        return [m.provisioner.process.pid for m in managers if getattr(m.provisioner, "process", None)]
