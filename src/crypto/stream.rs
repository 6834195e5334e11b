//! The chunked AEAD stream of snapshot files (the STREAM construction): each chunk is
//! sealed with nonce = 7-byte random prefix | chunk counter (u32) | last-chunk flag, and
//! the stream header as associated data, so altered, reordered, dropped or truncated
//! chunks, and chunks from another stream, all fail to open.

use std::io::{self, Read, Write};

use super::{Aead, Nonce, TAG_LEN};

/// Bytes of the random nonce prefix of a stream.
pub const PREFIX_LEN: usize = 7;

fn nonce(prefix: &[u8; PREFIX_LEN], counter: u32, last: bool) -> Nonce {
    let mut n = [0u8; 12];
    n[..PREFIX_LEN].copy_from_slice(prefix);
    n[PREFIX_LEN..11].copy_from_slice(&counter.to_be_bytes());
    n[11] = u8::from(last);
    Nonce(n)
}

fn chunk_error(what: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what)
}

/// What sealer and opener of one stream share: the key, the associated data every
/// chunk is bound to, the nonce prefix and the chunk size.
#[derive(Clone, Copy)]
pub struct StreamKey<'a> {
    /// The stream's AES-GCM key.
    pub aead: &'a Aead,
    /// Bound to every chunk (a snapshot's header).
    pub aad: &'a [u8],
    /// The random nonce prefix.
    pub prefix: [u8; PREFIX_LEN],
    /// Plaintext bytes per chunk.
    pub chunk_size: usize,
}

/// Seals everything written to it into length-prefixed chunks of `chunk_size`
/// plaintext bytes. [`Sealer::finish`] writes the final chunk; without it the stream
/// reads as truncated.
pub struct Sealer<'a, W: Write> {
    out: W,
    key: StreamKey<'a>,
    counter: u32,
    buf: Vec<u8>,
}

impl<'a, W: Write> Sealer<'a, W> {
    /// A sealer writing to `out`.
    pub fn new(out: W, key: StreamKey<'a>) -> Self {
        Sealer {
            out,
            key,
            counter: 0,
            buf: Vec::with_capacity(key.chunk_size + TAG_LEN),
        }
    }

    fn seal_chunk(&mut self, last: bool) -> io::Result<()> {
        let len = self.buf.len();
        self.buf.resize(len + TAG_LEN, 0);
        let nonce = nonce(&self.key.prefix, self.counter, last);
        self.key
            .aead
            .seal_in_place(&nonce, self.key.aad, &mut self.buf)
            .map_err(|e| io::Error::other(e.to_string()))?;
        self.out.write_all(&(self.buf.len() as u32).to_be_bytes())?;
        self.out.write_all(&self.buf)?;
        self.buf.clear();
        self.counter = self
            .counter
            .checked_add(1)
            .ok_or_else(|| io::Error::other("a stream holds at most 2^32 chunks"))?;
        Ok(())
    }

    /// Seals the final chunk and returns the inner writer.
    pub fn finish(mut self) -> io::Result<W> {
        self.seal_chunk(true)?;
        self.out.flush()?;
        Ok(self.out)
    }
}

impl<W: Write> Write for Sealer<'_, W> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let take = data
            .len()
            .min(self.key.chunk_size.saturating_sub(self.buf.len()));
        self.buf
            .extend_from_slice(data.get(..take).unwrap_or_default());
        if self.buf.len() == self.key.chunk_size {
            self.seal_chunk(false)?;
        }
        Ok(take)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}

/// Opens a stream made by [`Sealer`], yielding plaintext only after its chunk has
/// authenticated. Reading to the end also checks that the final chunk was present and
/// that nothing follows it.
pub struct Opener<'a, R: Read> {
    input: R,
    key: StreamKey<'a>,
    counter: u32,
    buf: Vec<u8>,
    plain_len: usize,
    pos: usize,
    finished: bool,
}

impl<'a, R: Read> Opener<'a, R> {
    /// An opener reading from `input`; `key` must be the sealer's.
    pub fn new(input: R, key: StreamKey<'a>) -> Self {
        Opener {
            input,
            key,
            counter: 0,
            buf: Vec::new(),
            plain_len: 0,
            pos: 0,
            finished: false,
        }
    }

    /// Chunks opened so far.
    pub fn chunks(&self) -> u32 {
        self.counter
    }

    fn next_chunk(&mut self) -> io::Result<()> {
        let mut len = [0u8; 4];
        if let Err(e) = self.input.read_exact(&mut len) {
            return Err(if e.kind() == io::ErrorKind::UnexpectedEof {
                chunk_error(format!(
                    "the stream is truncated: it ends after chunk {} without its final chunk",
                    self.counter
                ))
            } else {
                e
            });
        }
        let len = u32::from_be_bytes(len) as usize;
        if !(TAG_LEN..=self.key.chunk_size + TAG_LEN).contains(&len) {
            return Err(chunk_error(format!(
                "chunk {} has an impossible length {len}",
                self.counter
            )));
        }
        self.buf.resize(len, 0);
        self.input.read_exact(&mut self.buf).map_err(|_| {
            chunk_error(format!(
                "the stream is truncated inside chunk {}",
                self.counter
            ))
        })?;
        // The sealer closes a chunk early only when it is the last one.
        let last = len - TAG_LEN < self.key.chunk_size;
        let nonce = nonce(&self.key.prefix, self.counter, last);
        if self
            .key
            .aead
            .open_in_place(&nonce, self.key.aad, &mut self.buf)
            .is_err()
        {
            return Err(chunk_error(format!(
                "chunk {} does not authenticate: the stream was altered, its chunks reordered, or it belongs to another snapshot",
                self.counter
            )));
        }
        self.finished = last;
        self.plain_len = len - TAG_LEN;
        self.pos = 0;
        self.counter = self.counter.saturating_add(1);
        if self.finished {
            let mut extra = [0u8; 1];
            if self.input.read(&mut extra)? != 0 {
                return Err(chunk_error("bytes follow the final chunk".into()));
            }
        }
        Ok(())
    }
}

impl<R: Read> Read for Opener<'_, R> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        while self.pos == self.plain_len {
            if self.finished {
                return Ok(0);
            }
            self.next_chunk()?;
        }
        let n = out.len().min(self.plain_len.saturating_sub(self.pos));
        match (out.get_mut(..n), self.buf.get(self.pos..self.pos + n)) {
            (Some(out), Some(plain)) => out.copy_from_slice(plain),
            _ => return Err(io::Error::other("snapshot stream: position out of range")),
        }
        self.pos += n;
        Ok(n)
    }
}
