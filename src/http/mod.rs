//! HTTP as atrest's servers see it: a request as it arrived and an answer whose body is
//! zeroized when dropped. The protocols (`kms::wire`) read and write these types, so they
//! can be fuzzed without sockets; `server` (feature `server`) is the one HTTP stack that
//! carries them over TCP for every atrest server.

#[cfg(feature = "server")]
mod server;

use zeroize::Zeroizing;

#[cfg(feature = "server")]
pub use server::{Handler, HttpServer};

/// An HTTP request as it arrived: what a protocol reads and a signature covers.
#[derive(Clone, Copy, Debug)]
pub struct Request<'a> {
    /// The method.
    pub method: &'a str,
    /// The path and query, as sent.
    pub uri: &'a str,
    /// Every header, names in any case.
    pub headers: &'a [(String, String)],
    /// The body.
    pub body: &'a [u8],
}

impl Default for Request<'_> {
    fn default() -> Self {
        Request {
            method: "POST",
            uri: "/",
            headers: &[],
            body: &[],
        }
    }
}

impl<'a> Request<'a> {
    /// The value of header `name` (any case), if sent.
    pub fn header(&self, name: &str) -> Option<&'a str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// An HTTP answer: status, content type, other headers, and the body, zeroized when
/// dropped because it may hold a plaintext.
#[derive(Debug)]
pub struct Response {
    /// HTTP status code.
    pub status: u16,
    /// The Content-Type header.
    pub content_type: &'static str,
    /// Other headers.
    pub headers: Vec<(&'static str, String)>,
    /// The body.
    pub body: Zeroizing<Vec<u8>>,
}

impl Response {
    /// The value of header `name` (any case) among [`Response::headers`].
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}
