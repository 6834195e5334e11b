//! The packed checkpoint inside a snapshot's encrypted stream: a flat list of files, each
//! an entry tag, its name, its size and its bytes, then an end tag.

use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::Path;

use super::{SnapshotError, CHUNK_SIZE};

const FILE_ENTRY: u8 = 1;
const END_ENTRY: u8 = 0;

/// Files of the packed checkpoint: flat names only.
fn valid_file_name(name: &str) -> bool {
    !name.is_empty() && name != "." && name != ".." && !name.contains('/') && !name.contains('\0')
}

/// Reads the packed checkpoint from an opened stream, handing each file to `sink`, and
/// checks that the stream ends where the archive does.
pub(super) fn unpack(
    id: &str,
    stream: &mut dyn Read,
    mut sink: impl FnMut(&str, &mut dyn Read, u64) -> io::Result<()>,
) -> Result<u64, SnapshotError> {
    let corrupt = |reason: String| SnapshotError::Corrupt {
        id: id.to_string(),
        reason,
    };
    let stream_error = |e: io::Error| corrupt(e.to_string());
    let mut total = 0u64;
    loop {
        let mut tag = [0u8; 1];
        stream.read_exact(&mut tag).map_err(stream_error)?;
        match tag[0] {
            END_ENTRY => break,
            FILE_ENTRY => {}
            t => return Err(corrupt(format!("unknown archive entry {t}"))),
        }
        let mut len = [0u8; 2];
        stream.read_exact(&mut len).map_err(stream_error)?;
        let mut name = vec![0u8; u16::from_be_bytes(len) as usize];
        stream.read_exact(&mut name).map_err(stream_error)?;
        let name =
            String::from_utf8(name).map_err(|_| corrupt("a file name is not UTF-8".into()))?;
        if !valid_file_name(&name) {
            return Err(corrupt(format!("file name {name:?} is not allowed")));
        }
        let mut size = [0u8; 8];
        stream.read_exact(&mut size).map_err(stream_error)?;
        let size = u64::from_be_bytes(size);
        let mut file = stream.take(size);
        sink(&name, &mut file, size).map_err(stream_error)?;
        if file.limit() != 0 {
            return Err(corrupt(format!("file {name} is truncated")));
        }
        total += size;
    }
    // Reading past the archive's end makes the stream check its final chunk and that
    // nothing follows it.
    let mut extra = [0u8; 1];
    if stream.read(&mut extra).map_err(stream_error)? != 0 {
        return Err(corrupt("data follows the end of the archive".into()));
    }
    Ok(total)
}

/// Packs every file of `dir` (flat) into `out`: entry, name, size, bytes; then an end entry.
pub(super) fn pack_dir(
    dir: &Path,
    out: &mut dyn Write,
    progress: &mut dyn FnMut(u64),
) -> io::Result<()> {
    let mut names: Vec<String> = fs::read_dir(dir)?
        .map(|e| e.map(|e| e.file_name().to_string_lossy().into_owned()))
        .collect::<Result<_, _>>()?;
    names.sort();
    let mut done = 0u64;
    let mut buf = vec![0u8; CHUNK_SIZE];
    for name in names {
        let mut file = File::open(dir.join(&name))?;
        let size = file.metadata()?.len();
        out.write_all(&[FILE_ENTRY])?;
        out.write_all(&(name.len() as u16).to_be_bytes())?;
        out.write_all(name.as_bytes())?;
        out.write_all(&size.to_be_bytes())?;
        let mut left = size;
        while left > 0 {
            let want = left.min(CHUNK_SIZE as u64) as usize;
            let n = file.read(buf.get_mut(..want).unwrap_or_default())?;
            if n == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!("{name} shrank while being packed"),
                ));
            }
            out.write_all(buf.get(..n).unwrap_or_default())?;
            left -= n as u64;
            done += n as u64;
            progress(done);
        }
    }
    out.write_all(&[END_ENTRY])
}
