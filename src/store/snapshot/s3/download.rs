//! Downloads: a snapshot object streamed in order, its first request only a header's
//! worth, resumed from the byte where a connection broke, pinned to one ETag.

use std::io::{self, Read};
use std::time::Duration;

use aws_sdk_s3::error::ProvideErrorMetadata;
use aws_sdk_s3::primitives::ByteStream;
use bytes::{Buf, Bytes};

use super::{s3_error, Object, HEAD_WINDOW, MAX_RESUMES};
use crate::aws::error_chain;

/// A snapshot being downloaded: streamed, resumed from where a broken connection left
/// it, and checked to be the same object throughout (its ETag).
pub(super) struct ObjectReader {
    object: Object,
    offset: u64,
    /// Known from the first answer.
    size: Option<u64>,
    etag: Option<String>,
    body: Option<ByteStream>,
    chunk: Bytes,
    /// Where the current answer's range ends.
    answer_end: u64,
    /// Broken or short answers in a row.
    failures: u32,
    read_timeout: Duration,
}

impl ObjectReader {
    /// Starts reading `object`: fails now, not at the first read, when there is none.
    pub(super) fn open(object: Object, read_timeout: Duration) -> io::Result<Self> {
        let mut reader = ObjectReader {
            object,
            offset: 0,
            size: None,
            etag: None,
            body: None,
            chunk: Bytes::new(),
            answer_end: 0,
            failures: 0,
            read_timeout,
        };
        reader.body = reader.get()?;
        Ok(reader)
    }

    /// GETs the object from the current offset: the first request a small window (a
    /// header is all a listing reads), the next ones the rest. `None` past the end.
    fn get(&mut self) -> io::Result<Option<ByteStream>> {
        if self.size.is_some_and(|size| self.offset >= size) {
            return Ok(None);
        }
        let range = match self.size {
            None => format!("bytes={}-{}", self.offset, self.offset + HEAD_WINDOW - 1),
            Some(_) => format!("bytes={}-", self.offset),
        };
        let call = self
            .object
            .client
            .get_object()
            .bucket(&self.object.bucket)
            .key(&self.object.key)
            .range(range)
            .set_if_match(self.etag.clone())
            .send();
        let answer = match self.object.block_on(call)? {
            Ok(answer) => answer,
            // An empty object has no byte to range over.
            Err(e) if e.raw_response().is_some_and(|r| r.status().as_u16() == 416) => {
                self.size = Some(self.offset);
                return Ok(None);
            }
            Err(e) if e.code() == Some("PreconditionFailed") => {
                return Err(io::Error::other(format!(
                    "{} was replaced while being read",
                    self.object.url()
                )))
            }
            Err(e) => return Err(s3_error("GetObject", &self.object.url(), e)),
        };
        let total = answer
            .content_range()
            .and_then(|r| r.rsplit_once('/'))
            .and_then(|(_, total)| total.parse::<u64>().ok());
        match total {
            Some(total) => self.size = Some(total),
            // The whole object, the range ignored: fine only from the start.
            None if self.offset == 0 => {
                self.size = Some(answer.content_length().unwrap_or_default().max(0) as u64)
            }
            None => {
                return Err(io::Error::other(format!(
                    "S3 ignored the byte range of a resumed download of {}",
                    self.object.url()
                )))
            }
        }
        if self.etag.is_none() {
            self.etag = answer.e_tag().map(str::to_string);
        }
        let size = self.size.unwrap_or_default();
        self.answer_end = match total {
            Some(_) => {
                size.min(self.offset + answer.content_length().unwrap_or_default().max(0) as u64)
            }
            None => size,
        };
        Ok(Some(answer.body))
    }

    fn failed(&mut self, why: String) -> io::Result<()> {
        self.failures += 1;
        if self.failures > MAX_RESUMES {
            return Err(io::Error::new(
                io::ErrorKind::ConnectionAborted,
                format!(
                    "the download of {} broke off {MAX_RESUMES} times at byte {}: {why}",
                    self.object.url(),
                    self.offset
                ),
            ));
        }
        std::thread::sleep(Duration::from_millis(100 << self.failures.min(5)));
        Ok(())
    }
}

impl Read for ObjectReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            if !self.chunk.is_empty() {
                let n = buf.len().min(self.chunk.len());
                self.chunk
                    .copy_to_slice(buf.get_mut(..n).unwrap_or_default());
                self.offset += n as u64;
                self.failures = 0;
                return Ok(n);
            }
            if buf.is_empty() {
                return Ok(0);
            }
            let body = match self.body.take() {
                Some(body) => body,
                None => match self.get()? {
                    Some(body) => body,
                    None => return Ok(0),
                },
            };
            let timeout = self.read_timeout;
            let (body, next) = self.object.block_on(async move {
                let mut body = body;
                let next = tokio::time::timeout(timeout, body.next()).await;
                (body, next)
            })?;
            match next {
                Ok(Some(Ok(bytes))) => {
                    self.chunk = bytes;
                    self.body = Some(body);
                }
                // This answer's range is done: the next GET starts where it ended, or
                // there is nothing left.
                Ok(None) => {
                    if self.offset < self.answer_end {
                        self.failed("an answer ended early".into())?;
                    }
                }
                Ok(Some(Err(e))) => self.failed(error_chain(&e))?,
                Err(_) => self.failed(format!("no byte came for {timeout:?}"))?,
            }
        }
    }
}
