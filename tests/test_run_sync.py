"""``aeg_jupyter.run_sync``: a coroutine from sync code, with or without a running loop in the thread,
on a private loop in a daemon thread, with no global patching of asyncio."""

from __future__ import annotations

import asyncio
import concurrent.futures
import sys
import threading
from typing import Any

import pytest
from conftest import run_child

import aeg_jupyter
from aeg_jupyter import KernelContext, run_sync


async def where_am_i(result: Any = None) -> tuple[str, Any, asyncio.Task[Any] | None]:
    await asyncio.sleep(0)
    return threading.current_thread().name, result, asyncio.current_task()


async def boom() -> None:
    await asyncio.sleep(0)
    raise ValueError("inside the coroutine")


def test_without_a_running_loop_it_runs_here() -> None:
    name, result, task = run_sync(where_am_i(7))
    assert (name, result) == (threading.current_thread().name, 7)
    assert task is not None  # asyncio.current_task() works: nothing is patched


def test_with_a_running_loop_it_uses_the_private_loop_thread() -> None:
    async def kernel_cell() -> tuple[Any, ...]:
        loop = asyncio.get_running_loop()
        name, result, task = run_sync(where_am_i("x"))
        assert asyncio.get_running_loop() is loop  # the caller's loop is untouched
        return name, result, task

    name, result, task = asyncio.run(kernel_cell())
    assert (name, result) == ("aeg-sync-loop", "x")
    assert task is not None
    thread = next(t for t in threading.enumerate() if t.name == "aeg-sync-loop")
    assert thread.daemon


def test_the_private_loop_is_reused() -> None:
    async def twice() -> tuple[int, int]:
        def loop_id() -> int:
            async def get() -> int:
                return id(asyncio.get_running_loop())

            return run_sync(get())

        return loop_id(), loop_id()

    first, second = asyncio.run(twice())
    assert first == second
    assert sum(t.name == "aeg-sync-loop" for t in threading.enumerate()) == 1


@pytest.mark.parametrize("running_loop", [False, True])
def test_exceptions_propagate(running_loop: bool) -> None:
    async def call() -> None:
        run_sync(boom())

    with pytest.raises(ValueError, match="inside the coroutine"):
        if running_loop:
            asyncio.run(call())
        else:
            run_sync(boom())


def test_timeout_with_a_running_loop() -> None:
    async def call() -> None:
        run_sync(asyncio.sleep(5), timeout=0.05)

    with pytest.raises((TimeoutError, concurrent.futures.TimeoutError)):
        asyncio.run(call())


@pytest.mark.parametrize("thing", [None, 3, "coro", asyncio.sleep])
def test_refuses_what_is_not_a_coroutine(thing: Any) -> None:
    with pytest.raises(TypeError, match=r"^run_sync needs a coroutine, got "):
        run_sync(thing)


def test_many_threads_at_once() -> None:
    async def caller(i: int) -> int:
        async def double() -> int:
            await asyncio.sleep(0.01)
            return 2 * i

        return run_sync(double())

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda i: asyncio.run(caller(i)), range(32)))
    assert results == [2 * i for i in range(32)]


@pytest.mark.parametrize("running_loop", [False, True])
def test_the_tutorial_api_through_run_sync(context: KernelContext, running_loop: bool) -> None:
    arts, mem = context.artifacts(), context.memory()

    def sync_code() -> tuple[Any, Any]:
        art = run_sync(arts.save_json({"lr": 1e-3}, kind="config"))
        run_sync(mem.record(kind="train_log", data={"epoch": 1}))
        return art, run_sync(mem.recent_data(kinds=["train_log"], limit=1))

    if running_loop:

        async def cell() -> tuple[Any, Any]:
            return sync_code()

        art, data = asyncio.run(cell())
    else:
        art, data = sync_code()
    assert data == [{"epoch": 1}]
    assert run_sync(arts.load_json(art)) == {"lr": 1e-3}


def test_asyncio_is_not_patched() -> None:
    proc = run_child(
        """
        import asyncio, sys
        before = (asyncio.run, asyncio.get_event_loop, asyncio.current_task, asyncio.BaseEventLoop.run_until_complete)
        import aeg_jupyter

        async def main():
            return aeg_jupyter.run_sync(asyncio.sleep(0, result=5))

        assert asyncio.run(main()) == 5
        after = (asyncio.run, asyncio.get_event_loop, asyncio.current_task, asyncio.BaseEventLoop.run_until_complete)
        assert before == after, "asyncio was patched"
        print("nest_asyncio" in sys.modules)
        """
    )
    assert proc.stdout.strip() == "False"


def test_exported_at_the_top_level() -> None:
    assert aeg_jupyter.run_sync is run_sync
    assert "nest_asyncio" not in sys.modules


def test_nested_run_sync_on_the_private_loop_does_not_deadlock():
    import asyncio

    import aeg_jupyter

    async def inner():
        return 1

    async def outer():
        return aeg_jupyter.run_sync(inner(), timeout=5)

    async def main():
        return aeg_jupyter.run_sync(outer(), timeout=10)

    assert asyncio.run(main()) == 1


def test_timeout_cancels_the_coroutine():
    import asyncio
    import concurrent.futures

    import aeg_jupyter

    state = {"cancelled": False}

    async def slow():
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            state["cancelled"] = True
            raise

    async def main():
        aeg_jupyter.run_sync(slow(), timeout=0.2)

    try:
        asyncio.run(main())
    except (TimeoutError, concurrent.futures.TimeoutError):
        pass
    else:
        raise AssertionError("expected a timeout")
    import time

    deadline = time.time() + 5
    while not state["cancelled"] and time.time() < deadline:
        time.sleep(0.01)
    assert state["cancelled"]
