//! Unit tests: encoding, naming, rolling, replay and a failing disk.

use std::fs::File;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use arrow_array::cast::AsArray;
use arrow_array::types::{Int32Type, Int64Type};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use weir_config::{
    Column, ColumnType, Compression, ParquetSink as Settings, PartitionKey, StorePath, TimeUnit,
};
use weir_core::{Output, PartitionTracker, Record, Sink, SinkError};

use crate::{ParquetSink, encode, files};

fn columns() -> Vec<Column> {
    vec![
        Column {
            name: "user".into(),
            data_type: ColumnType::String,
            nullable: false,
        },
        Column {
            name: "n".into(),
            data_type: ColumnType::Int64,
            nullable: true,
        },
        Column {
            name: "at".into(),
            data_type: ColumnType::Timestamp(TimeUnit::Millisecond),
            nullable: true,
        },
    ]
}

fn settings(path: &Path, roll_records: u64) -> Settings {
    Settings {
        path: StorePath::Local(path.to_owned()),
        endpoint: None,
        region: None,
        schema: columns(),
        dead_letters: false,
        partition_by: Vec::new(),
        roll_records,
        roll_bytes: None,
        roll_age: Duration::from_secs(3600),
        compression: Compression::Zstd,
        row_group_rows: 2,
    }
}

#[test]
fn values_decode_together_and_misfits_are_refused_with_their_field() {
    let schema = encode::value_schema(&columns());
    let values: [Option<&[u8]>; 7] = [
        Some(br#"{"user":"a","n":1,"at":"2026-12-05T10:00:00Z","extra":true}"#),
        Some(br#"{"user":"b","n":"many"}"#),
        Some(br#"{"n":3}"#),
        Some(b"{\"user\":\"\xff\"}"),
        Some(br#"{"user":"c"} {"user":"d"}"#),
        None,
        Some(br#"{"user":"e","at":1764928800000}"#),
    ];
    let (batch, refused) = encode::decode(&schema, &values);
    let batch = batch.expect("two values fit");
    assert_eq!(batch.num_rows(), 2);
    let users = batch.column(0).as_string::<i32>();
    assert_eq!((users.value(0), users.value(1)), ("a", "e"));
    let at: Vec<usize> = refused.iter().map(|(i, _)| *i).collect();
    assert_eq!(at, [1, 2, 3, 4, 5]);
    assert_eq!(
        refused[0].1.field.as_deref(),
        Some("n"),
        "{:?}",
        refused[0].1
    );
    assert!(refused[2].1.reason.contains("UTF-8"), "{:?}", refused[2].1);
    assert!(
        refused[3].1.reason.contains("exactly one"),
        "{:?}",
        refused[3].1
    );
    assert!(
        refused[4].1.reason.contains("no value"),
        "{:?}",
        refused[4].1
    );
    assert!(
        refused[1].1.reason.contains("user"),
        "a missing required field is named: {:?}",
        refused[1].1
    );
}

#[test]
fn days_and_folders_follow_hive() {
    assert_eq!(encode::day(0), "1970-01-01");
    assert_eq!(encode::day(20_427), "2025-12-05");
    assert_eq!(encode::day(-1), "1969-12-31");
    let schema = encode::value_schema(&columns());
    let values: [Option<&[u8]>; 3] = [
        Some(br#"{"user":"a/b","at":"2026-12-05T23:59:59Z"}"#),
        Some(br#"{"user":"c","at":"2026-12-06T00:00:00Z"}"#),
        Some(br#"{"user":"a/b","at":"2026-12-05T01:00:00Z"}"#),
    ];
    let (batch, _) = encode::decode(&schema, &values);
    let keys = [
        PartitionKey {
            name: "dt".into(),
            column: "at".into(),
        },
        PartitionKey {
            name: "user".into(),
            column: "user".into(),
        },
    ];
    let groups = encode::split_by_folder(&batch.unwrap(), &keys).unwrap();
    let folders: Vec<(&str, usize)> = groups
        .iter()
        .map(|(f, b, _)| (f.as_str(), b.num_rows()))
        .collect();
    assert_eq!(
        folders,
        [("dt=2026-12-05/user=a%2Fb", 2), ("dt=2026-12-06/user=c", 1)]
    );
}

#[test]
fn names_are_derived_from_the_source_partition_and_first_offset() {
    assert_eq!(
        files::file_name("clicks", 3, 42),
        "clicks-3-00000000000000000042.parquet"
    );
}

/// Writes one output per offset, each `{"user":"u<offset>","n":<offset>}`.
fn write(sink: &ParquetSink, tracker: &PartitionTracker, offsets: std::ops::Range<i64>) {
    let records: Vec<Record> = offsets
        .clone()
        .map(|o| Record {
            offset: o,
            timestamp: Some(1_764_928_800_000 + o),
            value: Some(format!(r#"{{"user":"u{o}","n":{o}}}"#).into_bytes().into()),
            ..Record::default()
        })
        .collect();
    let acks: Vec<_> = offsets.map(|o| tracker.track(o)).collect();
    let outputs: Vec<Output<'_>> = records
        .iter()
        .zip(&acks)
        .map(|(record, ack)| Output {
            destination: "lake",
            partition: None,
            record,
            source_topic: "clicks",
            source_partition: 1,
            ack,
        })
        .collect();
    let refused = sink.write(&outputs).expect("the store takes the writes");
    assert!(refused.is_empty());
    for ack in &acks {
        ack.settle();
    }
}

/// Every row of the Parquet files under `root`: (offset, n), sorted.
fn rows(root: &Path) -> Vec<(i64, i64)> {
    let mut rows = Vec::new();
    for entry in std::fs::read_dir(root).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "parquet") {
            continue;
        }
        let reader = ParquetRecordBatchReaderBuilder::try_new(File::open(&path).unwrap())
            .unwrap()
            .build()
            .unwrap();
        for batch in reader {
            let batch = batch.unwrap();
            let n = batch
                .column_by_name("n")
                .unwrap()
                .as_primitive::<Int64Type>();
            let offset = batch.column_by_name("weir_offset").unwrap();
            let partition = batch.column_by_name("weir_partition").unwrap();
            for row in 0..batch.num_rows() {
                assert_eq!(partition.as_primitive::<Int32Type>().value(row), 1);
                rows.push((offset.as_primitive::<Int64Type>().value(row), n.value(row)));
            }
        }
    }
    rows.sort_unstable();
    rows
}

fn parquet_files(root: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(root)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n != files::PROGRESS_DIR)
        .collect();
    names.sort();
    names
}

#[test]
fn files_roll_every_n_input_records_and_acks_wait_for_them() {
    let dir = tempfile::tempdir().unwrap();
    let sink = ParquetSink::new("lake", &settings(dir.path(), 3)).unwrap();
    let tracker = PartitionTracker::new();
    write(&sink, &tracker, 10..12);
    assert_eq!(tracker.committable(), None, "no file is complete yet");
    assert!(parquet_files(dir.path()).is_empty(), "nothing visible");
    write(&sink, &tracker, 12..17);
    assert_eq!(
        parquet_files(dir.path()),
        [
            "clicks-1-00000000000000000010.parquet",
            "clicks-1-00000000000000000013.parquet"
        ]
    );
    assert_eq!(tracker.committable(), Some(16));
    assert_eq!(sink.in_flight(), 1);
    sink.release("clicks", 1, Duration::from_secs(5)).unwrap();
    assert_eq!(tracker.committable(), Some(17));
    let expected: Vec<(i64, i64)> = (10..17).map(|o| (o, o)).collect();
    assert_eq!(rows(dir.path()), expected);
}

#[test]
fn a_replay_writes_nothing_twice() {
    let dir = tempfile::tempdir().unwrap();
    {
        let sink = ParquetSink::new("lake", &settings(dir.path(), 4)).unwrap();
        let tracker = PartitionTracker::new();
        write(&sink, &tracker, 0..10);
        // A crash: the open segment (8, 9) is lost, never visible.
    }
    let sink = ParquetSink::new("lake", &settings(dir.path(), 4)).unwrap();
    let tracker = PartitionTracker::new();
    // The last commit was at 5: the replay starts there.
    write(&sink, &tracker, 5..12);
    assert_eq!(tracker.committable(), Some(12), "8..12 sealed at 4 records");
    let expected: Vec<(i64, i64)> = (0..12).map(|o| (o, o)).collect();
    assert_eq!(rows(dir.path()), expected);
    assert_eq!(parquet_files(dir.path()).len(), 3);
}

#[test]
fn a_failing_disk_holds_the_writes_back_and_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("lake");
    let sink = ParquetSink::new("lake", &settings(&root, 2)).unwrap();
    let tracker = PartitionTracker::new();
    write(&sink, &tracker, 0..1);
    // The folder cannot be made: taken in memory, but completing the segment fails.
    std::fs::write(&root, b"not a folder").unwrap();
    write(&sink, &tracker, 1..3);
    let ack = Arc::new(tracker.track(3));
    let record = Record::default();
    let out = [Output {
        destination: "lake",
        partition: None,
        record: &record,
        source_topic: "clicks",
        source_partition: 1,
        ack: &ack,
    }];
    assert!(matches!(sink.write(&out), Err(SinkError::Unavailable(_))));
    assert_eq!(tracker.committable(), None);
    std::fs::remove_file(&root).unwrap();
    sink.flush(Duration::from_secs(5)).unwrap();
    assert_eq!(tracker.committable(), Some(3));
    assert_eq!(rows(&root), [(0, 0), (1, 1), (2, 2)]);
}
