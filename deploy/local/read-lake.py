#!/usr/bin/env python3
"""Reads the Parquet lake of `make demo` back with pyarrow, an independent reader.

Prints how many rows and files the lake holds, its columns, and a few rows with their provenance
(source topic, partition and offset, the record's timestamp and trace id). With --expect N it
fails unless the lake holds exactly N rows, each source record (topic, partition, offset) once,
each with a trace id.

    read-lake.py LAKE [--expect N] [--show 3]
"""

import argparse
import re
import sys
from datetime import datetime, timezone
from pathlib import Path

import pyarrow.dataset as ds

PROVENANCE = ["weir_topic", "weir_partition", "weir_offset", "weir_timestamp", "weir_trace_id"]
SHOWN = ["user", "section", "ts", "dt"] + PROVENANCE


def fail(message):
    print(f"FAILED: {message}", file=sys.stderr)
    sys.exit(1)


def text(value):
    """A cell: instants in UTC to the millisecond, as RFC 3339."""
    if isinstance(value, datetime):
        return value.astimezone(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    return str(value)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("lake", type=Path, help="the lake's folder")
    parser.add_argument("--expect", type=int, help="the number of rows the lake must hold")
    parser.add_argument("--show", type=int, default=3, help="how many rows to print")
    args = parser.parse_args()

    if not args.lake.is_dir():
        fail(f"{args.lake} is not a folder: nothing was written")
    # Files still being written are hidden (.<name>.tmp) and the sink's progress is under _weir/;
    # the reader skips both, as any Hive-aware reader does.
    dataset = ds.dataset(args.lake, format="parquet", partitioning="hive")
    table = dataset.to_table()
    files = dataset.files
    leftovers = [p for p in args.lake.rglob(".*") if p.is_file()]

    print(f"{table.num_rows} rows in {len(files)} file{'s' if len(files) != 1 else ''} under {args.lake}")
    for f in sorted(files)[:8]:
        print(f"  {Path(f).relative_to(args.lake)}")
    if len(files) > 8:
        print(f"  ... and {len(files) - 8} more")
    print("columns:")
    for field in table.schema:
        print(f"  {field.name}: {field.type}")

    # A few rows: the first of each source partition, then the next ones in offset order.
    shown = [c for c in SHOWN if c in table.column_names]
    if table.num_rows == 0:
        fail("the lake holds no rows")
    ordered = table.sort_by([("weir_partition", "ascending"), ("weir_offset", "ascending")])
    ordered = ordered.select(shown).to_pylist()
    picked, partitions = [], set()
    for row in ordered:
        if row["weir_partition"] not in partitions:
            partitions.add(row["weir_partition"])
            picked.append(row)
    picked += [row for row in ordered[: args.show] if row not in picked]
    cells = [shown] + [[text(row[c]) for c in shown] for row in picked[: args.show]]
    widths = [max(len(line[i]) for line in cells) for i in range(len(shown))]
    print("a few rows:")
    for line in cells:
        print("  " + "  ".join(cell.ljust(width) for cell, width in zip(line, widths)).rstrip())

    if args.expect is None:
        return
    problems = []
    if table.num_rows != args.expect:
        problems.append(f"the lake holds {table.num_rows} rows, expected {args.expect}")
    keys = table.group_by(["weir_topic", "weir_partition", "weir_offset"]).aggregate([])
    if keys.num_rows != table.num_rows:
        problems.append(f"{table.num_rows - keys.num_rows} rows repeat a source record")
    trace_ids = table["weir_trace_id"].to_pylist() if "weir_trace_id" in table.column_names else []
    missing = sum(t is None for t in trace_ids)
    if missing:
        problems.append(f"{missing} rows have no trace id")
    bad = [t for t in trace_ids if t is not None and not re.fullmatch("[0-9a-f]{32}", t)]
    if bad:
        problems.append(f"{len(bad)} trace ids are not 32 hex digits, e.g. {bad[0]!r}")
    if leftovers:
        problems.append(f"hidden files left behind: {[str(p) for p in leftovers[:3]]}")
    if problems:
        fail("; ".join(problems))
    print(f"ok: {table.num_rows} rows, as many as the {args.expect} enriched clicks; "
          "each source record once, each with its trace id")


if __name__ == "__main__":
    main()
