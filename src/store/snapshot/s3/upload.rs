//! Uploads: a snapshot sealed straight into one PutObject, or a multipart upload once it
//! outgrows a part, with one part in memory at a time and the upload recorded locally
//! until it completes or is aborted.

use std::collections::HashMap;
use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{ChecksumAlgorithm, CompletedMultipartUpload, CompletedPart};

use super::super::storage::PendingSnapshot;
use super::{s3_error, Object, PART_SIZE};
use crate::durable::{sync_dir, write_atomic, FileLock};

/// A multipart upload under way, and where this machine recorded it.
struct Upload {
    id: String,
    parts: Vec<CompletedPart>,
}

/// A snapshot being uploaded: one part in memory at a time.
pub(super) struct S3Pending {
    object: Object,
    metadata: HashMap<String, String>,
    buffer: Vec<u8>,
    /// Started once the snapshot outgrows one part; a smaller one is one PutObject.
    upload: Option<Upload>,
    journal: PathBuf,
    _creating: FileLock,
}

impl S3Pending {
    pub(super) fn new(
        object: Object,
        metadata: HashMap<String, String>,
        journal: PathBuf,
        creating: FileLock,
    ) -> Self {
        S3Pending {
            object,
            metadata,
            buffer: Vec::with_capacity(PART_SIZE),
            upload: None,
            journal,
            _creating: creating,
        }
    }

    fn part_size(&self) -> usize {
        let parts = self.upload.as_ref().map_or(0, |u| u.parts.len());
        PART_SIZE << (parts / 1000).min(4)
    }

    fn begin_upload(&mut self) -> io::Result<()> {
        let call = self
            .object
            .client
            .create_multipart_upload()
            .bucket(&self.object.bucket)
            .key(&self.object.key)
            .set_metadata(Some(self.metadata.clone()))
            .checksum_algorithm(ChecksumAlgorithm::Crc32)
            .send();
        let started = self
            .object
            .block_on(call)?
            .map_err(|e| s3_error("CreateMultipartUpload", &self.object.url(), e))?;
        let id = started
            .upload_id()
            .ok_or_else(|| {
                io::Error::other("S3 answered CreateMultipartUpload without an UploadId")
            })?
            .to_string();
        let record = format!("{}\n{id}\n", self.object.key);
        if let Err(e) = write_atomic(&self.journal, record.as_bytes()) {
            // Unrecorded, a later cleanup would never find it: end it now.
            let _ = self.object.abort(&id);
            return Err(e);
        }
        self.upload = Some(Upload {
            id,
            parts: Vec::new(),
        });
        Ok(())
    }

    /// Uploads the buffer as the next part.
    fn upload_part(&mut self) -> io::Result<()> {
        if self.upload.is_none() {
            self.begin_upload()?;
        }
        let Some(upload) = self.upload.as_mut() else {
            return Err(io::Error::other("no upload under way"));
        };
        let number = upload.parts.len() as i32 + 1;
        let body = std::mem::replace(&mut self.buffer, Vec::with_capacity(PART_SIZE));
        let call = self
            .object
            .client
            .upload_part()
            .bucket(&self.object.bucket)
            .key(&self.object.key)
            .upload_id(&upload.id)
            .part_number(number)
            .checksum_algorithm(ChecksumAlgorithm::Crc32)
            .body(ByteStream::from(body))
            .send();
        let done = self
            .object
            .block_on(call)?
            .map_err(|e| s3_error("UploadPart", &self.object.url(), e))?;
        upload.parts.push(
            CompletedPart::builder()
                .part_number(number)
                .set_e_tag(done.e_tag().map(str::to_string))
                .set_checksum_crc32(done.checksum_crc32().map(str::to_string))
                .build(),
        );
        Ok(())
    }

    fn put_whole(&mut self) -> io::Result<()> {
        let body = std::mem::take(&mut self.buffer);
        let call = self
            .object
            .client
            .put_object()
            .bucket(&self.object.bucket)
            .key(&self.object.key)
            .set_metadata(Some(self.metadata.clone()))
            .checksum_algorithm(ChecksumAlgorithm::Crc32)
            .body(ByteStream::from(body))
            .send();
        self.object
            .block_on(call)?
            .map_err(|e| s3_error("PutObject", &self.object.url(), e))?;
        Ok(())
    }

    fn complete(&mut self) -> io::Result<()> {
        if !self.buffer.is_empty() {
            self.upload_part()?;
        }
        let Some(upload) = self.upload.take() else {
            return Err(io::Error::other("no upload under way"));
        };
        let call = self
            .object
            .client
            .complete_multipart_upload()
            .bucket(&self.object.bucket)
            .key(&self.object.key)
            .upload_id(&upload.id)
            .multipart_upload(
                CompletedMultipartUpload::builder()
                    .set_parts(Some(upload.parts.clone()))
                    .build(),
            )
            .send();
        let result = self
            .object
            .block_on(call)?
            .map_err(|e| s3_error("CompleteMultipartUpload", &self.object.url(), e));
        if let Err(e) = result {
            // Dropping aborts it.
            self.upload = Some(upload);
            return Err(e);
        }
        remove_journal(&self.journal)
    }
}

impl Write for S3Pending {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let room = self.part_size().saturating_sub(self.buffer.len());
        let n = buf.len().min(room);
        self.buffer
            .extend_from_slice(buf.get(..n).unwrap_or_default());
        if self.buffer.len() >= self.part_size() {
            self.upload_part()?;
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl PendingSnapshot for S3Pending {
    fn commit(mut self: Box<Self>) -> io::Result<()> {
        if self.upload.is_some() {
            self.complete()
        } else {
            self.put_whole()
        }
    }
}

impl Drop for S3Pending {
    fn drop(&mut self) {
        // Not committed: abort now if S3 can be reached; if not, the journal leaves it to
        // the next cleanup.
        if let Some(upload) = self.upload.take() {
            if self.object.abort(&upload.id).is_ok() {
                let _ = remove_journal(&self.journal);
            }
        }
    }
}

fn remove_journal(journal: &Path) -> io::Result<()> {
    match fs::remove_file(journal) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => journal.parent().map_or(Ok(()), sync_dir),
    }
}
