"""The bench's profile summaries: py-spy's collapsed stacks and perf's samples of PostgreSQL, by function."""

from __future__ import annotations

from bench.profiling import perf_stacks, summarise, summarise_perf

# `perf script --fields comm,ip,sym,dso` of three samples, innermost frame first (as perf writes them).
PERF_SCRIPT = """\
postgres
\t    55b978b67249 _bt_compare (/usr/lib/postgresql/15/bin/postgres)
\t    55b978b5ed92 _bt_doinsert (/usr/lib/postgresql/15/bin/postgres)
\t    55b978b4e0fe btinsert (/usr/lib/postgresql/15/bin/postgres)
\t    55b978cdb928 ExecInsert (/usr/lib/postgresql/15/bin/postgres)
\t    7f0012345678 hypertable_modify_exec (/usr/lib/postgresql/15/lib/timescaledb-2.19.3.so (deleted))
\t    55b978e2a319 standard_ExecutorRun (/usr/lib/postgresql/15/bin/postgres)
\t    55b978da430c PostgresMain (/usr/lib/postgresql/15/bin/postgres)

postgres
\t          3540c7 [unknown] (/usr/lib/postgresql/15/bin/postgres)
\t    55b978cdb928 ExecInsert (/usr/lib/postgresql/15/bin/postgres)
\t    55b978da430c PostgresMain (/usr/lib/postgresql/15/bin/postgres)

postgres
\tffffffff81e3fffc skb_try_coalesce ([kernel.kallsyms])
\t          10a929 __libc_recv (/usr/lib/x86_64-linux-gnu/libc.so.6)
\t    55b978da430c PostgresMain (/usr/lib/postgresql/15/bin/postgres)
"""


def test_perf_samples_become_stacks_outermost_first() -> None:
    stacks = perf_stacks(PERF_SCRIPT)
    assert stacks == [
        [
            "PostgresMain",
            "standard_ExecutorRun",
            "hypertable_modify_exec",  # its library was replaced on disk while it ran: still named
            "ExecInsert",
            "btinsert",
            "_bt_doinsert",
            "_bt_compare",
        ],
        ["PostgresMain", "ExecInsert", "[unknown] in postgres"],
        ["PostgresMain", "__libc_recv", "skb_try_coalesce"],
    ]


def test_perf_summary_shares_self_and_total_without_the_frames_every_sample_passes() -> None:
    summary = summarise_perf(PERF_SCRIPT)
    assert summary["samples"] == 3
    assert dict(summary["self"]) == {"_bt_compare": 33.3, "[unknown] in postgres": 33.3, "skb_try_coalesce": 33.3}
    total = dict(summary["total"])
    assert total["ExecInsert"] == 66.7
    assert total["_bt_doinsert"] == 33.3
    assert total["__libc_recv"] == 33.3
    # The query loop and the executor's entry are on every stack; unnamed functions do not add up as one.
    assert not {"PostgresMain", "standard_ExecutorRun", "[unknown] in postgres"} & set(total)


def test_py_spy_summary_counts_each_stack_by_its_weight() -> None:
    collapsed = (
        "<module> (streaming/sink/daemon.py:10);run (streaming/runtime/runloop.py:5);"
        "Batch.of (streaming/sink/daemon.py:70) 3\n"
        "<module> (streaming/sink/daemon.py:10);run (streaming/runtime/runloop.py:5);poll (confluent_kafka/x.py:1) 1\n"
        "malformed line\n"
    )
    summary = summarise(collapsed)
    assert summary["samples"] == 4
    assert summary["self"] == [("Batch.of (streaming/sink/daemon.py)", 75.0), ("poll (confluent_kafka/x.py)", 25.0)]
    assert dict(summary["total"]) == {"Batch.of (streaming/sink/daemon.py)": 75.0, "poll (confluent_kafka/x.py)": 25.0}
