//! Where a store's files go: a local folder ([`crate::files`]) or an S3 bucket through
//! `object_store`. On S3 a file is one PUT, or a multipart upload above [`MULTIPART_OVER`]
//! bytes, completed before the file counts as written: either way an object appears whole or
//! not at all. Credentials come from the standard AWS variables and are never logged (the
//! client is not printed).
//!
//! Owns: the choice of backend and the S3 object names. Touches no Arrow conversion.

use std::path::PathBuf;
use std::time::Duration;

use arrow_array::RecordBatch;
use arrow_schema::SchemaRef;
use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::path::Path as ObjectPath;
use object_store::{
    BackoffConfig, ClientOptions, ObjectStoreExt, PutPayload, RetryConfig, WriteMultipart,
};
use parquet::file::properties::WriterProperties;
use weir_config::{ParquetSink as Settings, StorePath};

use crate::{StoreError, files};

/// Files larger than this go up in a multipart upload, in parts of this size.
pub const MULTIPART_OVER: usize = 8 << 20;

/// How long one request to the store may take (an 8 MiB part over a slow link included).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// How long connecting may take: a store that is down is known quickly.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// The client's own retries are few and short: the sink retries a failed file forever, with
/// backoff, and meanwhile reports the store unavailable (readiness, metrics). Long retries
/// inside the client (by default up to 3 minutes) would hide an outage instead.
fn retries() -> RetryConfig {
    RetryConfig {
        backoff: BackoffConfig {
            init_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(1),
            base: 2.0,
        },
        max_retries: 2,
        retry_timeout: Duration::from_secs(5),
    }
}

/// See the module's description.
#[derive(Debug)]
pub enum Target {
    Local(PathBuf),
    S3(S3),
}

pub struct S3 {
    client: AmazonS3,
    bucket: String,
    prefix: String,
    runtime: tokio::runtime::Runtime,
}

impl Target {
    pub fn new(settings: &Settings) -> Result<Self, StoreError> {
        let (bucket, prefix) = match &settings.path {
            StorePath::Local(folder) => return Ok(Self::Local(folder.clone())),
            StorePath::S3 { bucket, prefix } => (bucket, prefix),
        };
        let options = ClientOptions::new()
            .with_timeout(REQUEST_TIMEOUT)
            .with_connect_timeout(CONNECT_TIMEOUT);
        let mut builder = AmazonS3Builder::from_env()
            .with_bucket_name(bucket)
            .with_retry(retries())
            .with_client_options(options);
        let endpoint = settings
            .endpoint
            .clone()
            .or_else(|| std::env::var("AWS_ENDPOINT_URL").ok());
        if let Some(endpoint) = endpoint {
            builder = builder
                .with_allow_http(endpoint.starts_with("http://"))
                .with_endpoint(endpoint);
        }
        if let Some(region) = &settings.region {
            builder = builder.with_region(region);
        }
        let client = builder.build().map_err(StoreError::Client)?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(StoreError::io("cannot start the S3 client for", bucket))?;
        Ok(Self::S3(S3 {
            client,
            bucket: bucket.clone(),
            prefix: prefix.clone(),
            runtime,
        }))
    }

    /// How messages name where the files go.
    pub fn describe(&self) -> String {
        match self {
            Self::Local(folder) => folder.display().to_string(),
            Self::S3(s3) => format!("s3://{}/{}", s3.bucket, s3.prefix),
        }
    }

    /// Writes `batches` as the file `name` in `folder` (a Hive folder, or `""`), durably.
    /// Returns the file's size in bytes.
    pub fn write_file(
        &self,
        folder: &str,
        name: &str,
        schema: &SchemaRef,
        properties: &WriterProperties,
        batches: &[RecordBatch],
    ) -> Result<u64, StoreError> {
        match self {
            Self::Local(root) => {
                let path = root.join(folder).join(name);
                let written = files::write_parquet(&path, schema, properties, batches);
                if written.is_err() {
                    files::discard(&path);
                }
                written
            }
            Self::S3(s3) => {
                let path = s3.object(&[folder, name]);
                let bytes = files::encode_parquet(schema, properties, batches, name)?;
                let size = bytes.len() as u64;
                s3.put(&path, bytes).map(|()| size)
            }
        }
    }

    /// The last source offset of `topic`'s `partition` whose rows are all in complete files.
    pub fn read_progress(&self, topic: &str, partition: i32) -> Result<Option<i64>, StoreError> {
        match self {
            Self::Local(root) => {
                files::read_progress(&files::progress_path(root, topic, partition))
            }
            Self::S3(s3) => {
                let path = s3.object(&[files::PROGRESS_DIR, &progress_name(topic, partition)]);
                let got = s3.runtime.block_on(async {
                    let got = s3.client.get(&path).await?;
                    got.bytes().await
                });
                let bytes = match got {
                    Ok(bytes) => bytes,
                    Err(object_store::Error::NotFound { .. }) => return Ok(None),
                    Err(source) => return Err(s3.error("cannot read", &path, source)),
                };
                let text = String::from_utf8_lossy(&bytes).into_owned();
                text.trim()
                    .parse()
                    .map(Some)
                    .map_err(|_| StoreError::Progress {
                        path: path.to_string(),
                        text,
                    })
            }
        }
    }

    /// Records `offset` as the progress of `topic`'s `partition`, durably.
    pub fn write_progress(
        &self,
        topic: &str,
        partition: i32,
        offset: i64,
    ) -> Result<(), StoreError> {
        match self {
            Self::Local(root) => {
                files::write_progress(&files::progress_path(root, topic, partition), offset)
            }
            Self::S3(s3) => {
                let path = s3.object(&[files::PROGRESS_DIR, &progress_name(topic, partition)]);
                s3.put(&path, format!("{offset}\n").into_bytes())
            }
        }
    }
}

fn progress_name(topic: &str, partition: i32) -> String {
    format!("{topic}-{partition}.offset")
}

/// Names the bucket and prefix only: the client holds the credentials.
impl std::fmt::Debug for S3 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3")
            .field("bucket", &self.bucket)
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

impl S3 {
    /// The object `parts` names under the prefix (empty parts skipped).
    fn object(&self, parts: &[&str]) -> ObjectPath {
        let mut text = self.prefix.clone();
        for part in parts.iter().filter(|p| !p.is_empty()) {
            if !text.is_empty() {
                text.push('/');
            }
            text.push_str(part);
        }
        ObjectPath::from(text)
    }

    fn error(
        &self,
        what: &'static str,
        path: &ObjectPath,
        source: object_store::Error,
    ) -> StoreError {
        StoreError::Object {
            what,
            path: format!("s3://{}/{path}", self.bucket),
            source,
        }
    }

    /// One PUT, or for large files a multipart upload, completed. An upload that fails stays
    /// incomplete: invisible to readers (a bucket lifecycle rule removes such uploads).
    fn put(&self, path: &ObjectPath, bytes: Vec<u8>) -> Result<(), StoreError> {
        let result = self.runtime.block_on(async {
            if bytes.len() <= MULTIPART_OVER {
                return self
                    .client
                    .put(path, PutPayload::from(bytes))
                    .await
                    .map(drop);
            }
            let upload = self.client.put_multipart(path).await?;
            let mut writer = WriteMultipart::new_with_chunk_size(upload, MULTIPART_OVER);
            writer.write(&bytes);
            writer.finish().await.map(drop)
        });
        result.map_err(|source| self.error("cannot upload", path, source))
    }
}
