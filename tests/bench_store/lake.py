"""The lake side of deploy/local/bench-store.sh, with pyarrow and boto3: an independent reader of
what Weir wrote, and the fresh bucket of each S3 round.

    lake.py bucket NAME                creates bucket NAME on the S3 server at $S3_ENDPOINT
    lake.py check LAKE --expect N      reads every Parquet file under LAKE (a folder, or
                                       s3://bucket/prefix on $S3_ENDPOINT) and fails unless it
                                       holds exactly N rows, each source record (topic,
                                       partition, offset) once, each with the fields
                                       json-enrich derives; prints one line:
                                       lake: rows R files F bytes B

B is the sum of the sizes of the Parquet files (what a reader of the lake finds: files whose
names start with `.` or `_`, such as the sink's progress under `_weir/`, are left out). The S3
credentials and region come from the standard AWS variables.
"""

import argparse
import os
import sys
from pathlib import Path

import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.fs as fs


def fail(message):
    print(f"lake check FAILED: {message}", file=sys.stderr)
    sys.exit(1)


def s3_filesystem():
    scheme, host = os.environ["S3_ENDPOINT"].split("://", 1)
    return fs.S3FileSystem(endpoint_override=host, scheme=scheme,
                           access_key=os.environ["AWS_ACCESS_KEY_ID"],
                           secret_key=os.environ["AWS_SECRET_ACCESS_KEY"],
                           region=os.environ["AWS_REGION"])


def bucket(name):
    import boto3
    boto3.client("s3", endpoint_url=os.environ["S3_ENDPOINT"]).create_bucket(Bucket=name)


def check(lake, expect):
    if lake.startswith("s3://"):
        filesystem, where = s3_filesystem(), lake[len("s3://"):]
    else:
        if not Path(lake).is_dir():
            fail(f"{lake} is not a folder: nothing was written")
        filesystem, where = fs.LocalFileSystem(), str(Path(lake).resolve())
    dataset = ds.dataset(where, format="parquet", filesystem=filesystem)
    files = dataset.files
    size = sum(info.size for info in filesystem.get_file_info(files))
    table = dataset.to_table(columns=["weir_topic", "weir_partition", "weir_offset",
                                      "domain", "section", "hour"])
    rows = table.num_rows
    print(f"lake: rows {rows} files {len(files)} bytes {size}")
    problems = []
    if rows != expect:
        problems.append(f"{rows} rows, expected {expect}")
    if any(not f.endswith(".parquet") for f in files):
        problems.append(f"files not named *.parquet: {[f for f in files if not f.endswith('.parquet')][:3]}")
    keys = table.group_by(["weir_topic", "weir_partition", "weir_offset"]).aggregate([])
    if keys.num_rows != rows:
        problems.append(f"{rows - keys.num_rows} rows repeat a source record")
    for column in ("domain", "section", "hour"):
        missing = table[column].null_count
        if missing:
            problems.append(f"{missing} rows without {column}: not enriched")
    if rows and not pc.all(pc.equal(table["domain"], "shop.example")).as_py():
        problems.append("a row's domain is not shop.example")
    if not lake.startswith("s3://"):
        leftovers = [p for p in Path(lake).rglob(".*") if p.is_file()]
        if leftovers:
            problems.append(f"hidden files left behind: {[str(p) for p in leftovers[:3]]}")
    if problems:
        fail("; ".join(problems))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    b = sub.add_parser("bucket")
    b.add_argument("name")
    c = sub.add_parser("check")
    c.add_argument("lake")
    c.add_argument("--expect", type=int, required=True)
    args = parser.parse_args()
    if args.command == "bucket":
        bucket(args.name)
    else:
        check(args.lake, args.expect)


if __name__ == "__main__":
    main()
