//! `atrest put`, `get` and `scan`: records as bytes. Text that is UTF-8 prints as itself;
//! anything else is printed only as asked (`--base64`, or raw into `--output FILE`), never
//! mangled into replacement characters.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use atrest::control::cluster::Cluster;
use atrest::store::KeyRange;
use base64::Engine;
use serde_json::{Map, Value};

use crate::render::Output;
use crate::CliResult;

const BASE64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

/// The value `put` stores: the argument's bytes, or a file's (`-`: standard input).
pub fn value_to_put(value: Option<String>, file: Option<PathBuf>) -> Result<Vec<u8>, String> {
    match (value, file) {
        (Some(value), None) => Ok(value.into_bytes()),
        (None, Some(path)) if path == Path::new("-") => {
            let mut bytes = Vec::new();
            std::io::stdin()
                .read_to_end(&mut bytes)
                .map_err(|e| format!("cannot read the value from standard input: {e}"))?;
            Ok(bytes)
        }
        (None, Some(path)) => std::fs::read(&path)
            .map_err(|e| format!("cannot read the value from {}: {e}", path.display())),
        _ => Err("give the value either as an argument or as --value-file FILE".into()),
    }
}

/// How `get` and `scan` print bytes.
#[derive(Clone, Copy)]
pub struct Printing {
    pub base64: bool,
    pub out: Output,
}

impl Printing {
    /// `bytes` as text: itself when UTF-8 and not asked for base64; `None` when it is
    /// binary and base64 was not asked for.
    fn text(self, bytes: &[u8]) -> Option<String> {
        if self.base64 {
            return Some(BASE64.encode(bytes));
        }
        std::str::from_utf8(bytes).ok().map(str::to_string)
    }

    /// `bytes` as a JSON member `name`, or `name_base64` when binary or asked for.
    fn member(self, object: &mut Map<String, Value>, name: &str, bytes: &[u8]) {
        match std::str::from_utf8(bytes) {
            Ok(text) if !self.base64 => {
                object.insert(name.into(), text.into());
            }
            _ => {
                object.insert(format!("{name}_base64"), BASE64.encode(bytes).into());
            }
        }
    }

    fn record(self, key: &[u8], value: &[u8]) -> Result<String, String> {
        if self.out.json {
            let mut object = Map::new();
            self.member(&mut object, "key", key);
            self.member(&mut object, "value", value);
            return Ok(Value::Object(object).to_string());
        }
        match (self.text(key), self.text(value)) {
            (Some(k), Some(v)) => Ok(format!("{k}\t{v}")),
            _ => Err(binary(&format!("the record under {}", printable(key)))),
        }
    }
}

fn binary(what: &str) -> String {
    format!("{what} is not UTF-8 text; print it with --base64, or (get) write its bytes with --output FILE")
}

/// A key for a message: as text where it is, else base64.
fn printable(key: &[u8]) -> String {
    match std::str::from_utf8(key) {
        Ok(text) => format!("{text:?}"),
        Err(_) => format!("(base64) {}", BASE64.encode(key)),
    }
}

/// `get`: the value under `key`, printed or written to `output` as it is.
pub fn get(
    cluster: &Cluster,
    db: &str,
    key: &str,
    output: Option<PathBuf>,
    printing: Printing,
) -> CliResult {
    let value = cluster
        .get(db, key.as_bytes())?
        .ok_or_else(|| format!("no key {key:?} in database {db:?}"))?;
    if let Some(path) = output {
        return std::fs::write(&path, &value)
            .map_err(|e| format!("cannot write {}: {e}", path.display()).into());
    }
    if printing.out.json {
        let mut object = Map::new();
        object.insert("key".into(), key.into());
        printing.member(&mut object, "value", &value);
        printing.out.print(&Value::Object(object), String::new);
        return Ok(());
    }
    let text = printing
        .text(&value)
        .ok_or_else(|| binary(&format!("the value under {key:?}")))?;
    println!("{text}");
    Ok(())
}

/// `scan`: every record of `db` in `range`, a line each.
pub fn scan(cluster: &Cluster, db: &str, range: KeyRange, printing: Printing) -> CliResult {
    let stdout = std::io::stdout();
    let mut lock = stdout.lock();
    for record in cluster.scan(db, range)? {
        let (key, value): (Vec<u8>, Vec<u8>) = record?;
        let line = printing.record(&key, &value)?;
        if writeln!(lock, "{line}").is_err() {
            break; // stdout closed (e.g. piped into head)
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn binary_is_never_mangled() {
        let text = Printing {
            base64: false,
            out: Output { json: false },
        };
        assert_eq!(text.record(b"k", b"v").unwrap(), "k\tv");
        assert!(text
            .record(b"k", &[0xff, 0])
            .unwrap_err()
            .contains("--base64"));
        let base64 = Printing {
            base64: true,
            ..text
        };
        assert_eq!(base64.record(b"k", &[0xff, 0]).unwrap(), "aw==\t/wA=");
        let json = Printing {
            base64: false,
            out: Output { json: true },
        };
        let line: Value = serde_json::from_str(&json.record(b"k", &[0xff]).unwrap()).unwrap();
        assert_eq!(line, json!({ "key": "k", "value_base64": "/w==" }));
    }
}
