//! Snapshot files as objects in an S3 bucket (AWS S3 or any S3-compatible store), so
//! that a snapshot outlives its machine and restores on another.
//!
//! A snapshot is the object `PREFIX/ID.atrsnap`: the same bytes as the file on disk,
//! with user metadata naming the CMK, its region, the cluster and the node. The bucket
//! is the catalog: listing it and reading each object's header tells any machine which
//! snapshot depends on which CMK.
//!
//! Uploads stream while the snapshot is sealed: memory holds one part, never the
//! snapshot. A snapshot is visible only once its upload completes; the upload a killed
//! or failed create left behind is recorded in the local work directory and aborted by
//! the next cleanup there. An upload this machine did not record is never aborted here:
//! another machine may be writing it (a bucket lifecycle rule ends those it abandons).
//! Downloads stream, resuming where they broke off, bounded.

mod download;
mod upload;

use std::collections::HashMap;
use std::fmt;
use std::fs;
use std::io::{self, Read};
use std::path::PathBuf;
use std::time::Duration;

use aws_sdk_s3::config::http::HttpResponse;
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};

use super::storage::{
    valid_snapshot_id, PendingSnapshot, S3Location, SnapshotStorage, CREATES_LOCK, SUFFIX,
};
use crate::aws::{error_chain, AwsConfig, SdkRuntime};
use crate::durable::{sync_dir, FileLock};
use crate::format::SnapshotHeader;
use download::ObjectReader;
use upload::S3Pending;

/// Every part but the last is at least this big (S3's minimum is 5 MiB); parts grow so
/// that S3's 10,000 parts hold any snapshot.
const PART_SIZE: usize = 8 * 1024 * 1024;
/// A download's first request asks for this much: enough for any real header, so a
/// listing reads headers without fetching whole snapshots.
const HEAD_WINDOW: u64 = 16 * 1024;
/// Times a download resumes after its connection broke before giving up.
const MAX_RESUMES: u32 = 5;
const UPLOADS_DIR: &str = ".uploads";

/// Snapshot files as objects under `s3://BUCKET/PREFIX/`.
pub struct S3Storage {
    location: S3Location,
    client: aws_sdk_s3::Client,
    runtime: SdkRuntime,
    /// Local: the lock that keeps cleanup away from this machine's running creates, and
    /// the record of their uploads.
    work_dir: PathBuf,
    read_timeout: Duration,
}

impl fmt::Debug for S3Storage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "S3Storage({})", self.location)
    }
}

impl S3Storage {
    /// A client for `location` with `aws`'s region, endpoint (path-style addressing when
    /// one is given: what local S3-compatible stores expect), credentials and retries.
    /// `work_dir` is local and holds what a killed create leaves to clean up. Nothing is
    /// called yet: a wrong bucket or credentials show at the first call.
    pub fn connect(
        location: S3Location,
        aws: AwsConfig,
        work_dir: impl Into<PathBuf>,
    ) -> io::Result<Self> {
        let work_dir = work_dir.into();
        fs::create_dir_all(work_dir.join(UPLOADS_DIR))?;
        let runtime = SdkRuntime::start("atrest-s3")?;
        let path_style = aws.endpoint.is_some();
        let read_timeout = aws.attempt_timeout;
        let sdk = runtime.load(aws).ok_or_else(stopped)?;
        let config = aws_sdk_s3::config::Builder::from(&sdk)
            .force_path_style(path_style)
            .build();
        Ok(S3Storage {
            location,
            client: aws_sdk_s3::Client::from_conf(config),
            runtime,
            work_dir,
            read_timeout,
        })
    }

    /// Where the snapshots live.
    pub fn location(&self) -> &S3Location {
        &self.location
    }

    fn block_on<T: Send + 'static>(
        &self,
        future: impl std::future::Future<Output = T> + Send + 'static,
    ) -> io::Result<T> {
        self.runtime.block_on(future).ok_or_else(stopped)
    }

    fn key(&self, id: &str) -> io::Result<String> {
        if !valid_snapshot_id(id) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{id:?} is not a snapshot id"),
            ));
        }
        Ok(self.location.key(id))
    }

    fn url(&self, key: &str) -> String {
        url(&self.location.bucket, key)
    }

    fn object(&self, key: String) -> Object {
        Object {
            client: self.client.clone(),
            runtime: self.runtime.clone(),
            bucket: self.location.bucket.clone(),
            key,
        }
    }
}

impl SnapshotStorage for S3Storage {
    fn create(&self, id: &str, header: &SnapshotHeader) -> io::Result<Box<dyn PendingSnapshot>> {
        let key = self.key(id)?;
        let creating = FileLock::acquire_shared(&self.work_dir.join(CREATES_LOCK))?;
        let metadata = HashMap::from([
            ("atrest-cmk-arn".to_string(), header.cmk_arn.clone()),
            ("atrest-cmk-region".to_string(), header.cmk_region.clone()),
            ("atrest-cluster".to_string(), header.cluster.clone()),
            ("atrest-node".to_string(), header.node.clone()),
            (
                "atrest-created-ms".to_string(),
                header.created_ms.to_string(),
            ),
        ]);
        Ok(Box::new(S3Pending::new(
            self.object(key),
            metadata,
            self.work_dir.join(UPLOADS_DIR).join(id),
            creating,
        )))
    }

    fn open(&self, id: &str) -> io::Result<Box<dyn Read + Send>> {
        let object = self.object(self.key(id)?);
        Ok(Box::new(ObjectReader::open(object, self.read_timeout)?))
    }

    fn list(&self) -> io::Result<Vec<String>> {
        let prefix = self.location.list_prefix();
        let mut ids = Vec::new();
        let mut token = None;
        loop {
            let call = self
                .client
                .list_objects_v2()
                .bucket(&self.location.bucket)
                .prefix(&prefix)
                .set_continuation_token(token.take())
                .send();
            let page = self
                .block_on(call)?
                .map_err(|e| s3_error("ListObjectsV2", &self.location.to_string(), e))?;
            for object in page.contents() {
                let id = object
                    .key()
                    .and_then(|k| k.strip_prefix(&prefix))
                    .and_then(|name| name.strip_suffix(SUFFIX))
                    .filter(|id| valid_snapshot_id(id));
                if let Some(id) = id {
                    ids.push(id.to_string());
                }
            }
            token = page.next_continuation_token().map(str::to_string);
            if page.is_truncated() != Some(true) || token.is_none() {
                break;
            }
        }
        ids.sort();
        Ok(ids)
    }

    fn size(&self, id: &str) -> io::Result<u64> {
        let key = self.key(id)?;
        let call = self
            .client
            .head_object()
            .bucket(&self.location.bucket)
            .key(&key)
            .send();
        let head = self
            .block_on(call)?
            .map_err(|e| s3_error("HeadObject", &self.url(&key), e))?;
        Ok(head.content_length().unwrap_or_default().max(0) as u64)
    }

    fn delete(&self, id: &str) -> io::Result<()> {
        // DeleteObject succeeds on a missing key; the trait says NotFound.
        self.size(id)?;
        let key = self.key(id)?;
        let call = self
            .client
            .delete_object()
            .bucket(&self.location.bucket)
            .key(&key)
            .send();
        self.block_on(call)?
            .map_err(|e| s3_error("DeleteObject", &self.url(&key), e))?;
        Ok(())
    }

    fn remove_abandoned(&self) -> io::Result<usize> {
        let Some(_no_create_running) = FileLock::try_acquire(&self.work_dir.join(CREATES_LOCK))?
        else {
            return Ok(0);
        };
        let mut removed = 0;
        let journal_dir = self.work_dir.join(UPLOADS_DIR);
        for entry in fs::read_dir(&journal_dir)? {
            let path = entry?.path();
            let record = fs::read_to_string(&path)?;
            if let Some((key, upload_id)) = record.split_once('\n') {
                if self.object(key.to_string()).abort(upload_id.trim_end())? {
                    removed += 1;
                }
            }
            fs::remove_file(&path)?;
        }
        sync_dir(&journal_dir)?;
        Ok(removed)
    }

    fn location(&self, id: &str) -> String {
        self.url(&self.location.key(id))
    }
}

/// One object of the bucket, as the readers and writers below reach it.
struct Object {
    client: aws_sdk_s3::Client,
    runtime: SdkRuntime,
    bucket: String,
    key: String,
}

impl Object {
    fn block_on<T: Send + 'static>(
        &self,
        future: impl std::future::Future<Output = T> + Send + 'static,
    ) -> io::Result<T> {
        self.runtime.block_on(future).ok_or_else(stopped)
    }

    fn url(&self) -> String {
        url(&self.bucket, &self.key)
    }

    /// Aborts an upload; false when S3 no longer knows it.
    fn abort(&self, upload_id: &str) -> io::Result<bool> {
        let call = self
            .client
            .abort_multipart_upload()
            .bucket(&self.bucket)
            .key(&self.key)
            .upload_id(upload_id)
            .send();
        match self.block_on(call)? {
            Ok(_) => Ok(true),
            Err(e) if e.code() == Some("NoSuchUpload") => Ok(false),
            Err(e) => Err(s3_error("AbortMultipartUpload", &self.url(), e)),
        }
    }
}

/// How an object reads in messages and listings.
fn url(bucket: &str, key: &str) -> String {
    format!("s3://{bucket}/{key}")
}

fn stopped() -> io::Error {
    io::Error::other("the AWS SDK runtime stopped")
}

/// An S3 failure as an I/O error: NotFound and PermissionDenied where S3 says so, and
/// S3's code and message, or why no answer came.
fn s3_error<E>(operation: &str, target: &str, error: SdkError<E, HttpResponse>) -> io::Error
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let status = error.raw_response().map(|r| r.status().as_u16());
    let kind = match status {
        Some(404) => io::ErrorKind::NotFound,
        Some(403) => io::ErrorKind::PermissionDenied,
        _ => match &error {
            SdkError::TimeoutError(_) => io::ErrorKind::TimedOut,
            SdkError::DispatchFailure(_) => io::ErrorKind::ConnectionRefused,
            _ => io::ErrorKind::Other,
        },
    };
    let detail = match (error.code(), error.message()) {
        (Some(code), Some(message)) => format!("{code}: {message}"),
        (Some(code), None) => match status {
            Some(status) => format!("{code} (HTTP {status})"),
            None => code.to_string(),
        },
        _ => match status {
            Some(status) => format!("HTTP {status}"),
            None => error_chain(&error),
        },
    };
    io::Error::new(
        kind,
        S3Failure {
            operation: operation.to_string(),
            target: target.to_string(),
            detail,
        },
    )
}

/// A call S3 refused or that did not reach it: inside every I/O error of this storage
/// that comes from an S3 call, so a caller can tell them from local ones.
#[derive(Debug, thiserror::Error)]
#[error("S3 {operation} on {target}: {detail}")]
pub struct S3Failure {
    /// The S3 operation, as AWS names it (`UploadPart`).
    pub operation: String,
    /// The bucket or object (`s3://BUCKET/KEY`).
    pub target: String,
    /// S3's error code and message, or why no answer came.
    pub detail: String,
}
