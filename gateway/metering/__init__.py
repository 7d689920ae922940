"""Metering: what each call is recorded as, counted in and billed for.

Nothing here runs a call or knows the pool: the execution room hands a
finished call to execution/accounting.py, which writes it here.

- meter.py          per-call counters in a shared file-backed mapping
                    (meter.bin), atomic adds in csrc/meter.c.
- billing.py        what calls cost: pure arithmetic, the free tier, reports.
- log_lines.py      Lambda's platform log lines around each call (START,
                    END, REPORT, INIT_START, JSON platform events), caps.
- journal.py        append-only journal files of framed records.
- calls.py          CallJournal: one durable record per answered call (its
                    usage row and its log, one write(2)) before it is
                    answered, batched into SQLite in the background.
- ledger.py         the usage ledger (usage.db), and the SQLite batching it
                    shares with the log store.
- logstore.py       function logs as CloudWatch Logs keeps them (logs.db).
- log_records.py    a call's log as the journal carries it (CallLog) and as
                    queries read it back; each line's stamp. Pure.
- metrics.py        GET /metrics: the meter's Prometheus collector, and the
                    exposition of every collector.
- calls_metrics.py  the call journal's state for /metrics.
"""
