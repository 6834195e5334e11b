//! `kms serve`'s HTTP server as clients meet it, over raw TCP: keep-alive, many clients at
//! once, a stalled client that holds up nobody, and AWS-shaped refusals of what is not a
//! KMS request. Nothing here waits on a timing: a server that serialized its clients
//! would make these tests fail by their socket timeouts, not pass slowly.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::Duration;

use atrest::clock::SystemClock;
use atrest::kms::wire::{Endpoint, Identities};
use atrest::kms::{KmsServer, LocalKms};
use serde_json::Value;

const AUTH: &str = "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20261202/us-east-1/kms/aws4_request, SignedHeaders=host, Signature=00";

fn server() -> KmsServer {
    let kms = LocalKms::in_memory(Arc::new(SystemClock));
    let endpoint = Endpoint::new(
        kms,
        Identities::new("arn:aws:iam::111122223333:root").unwrap(),
    );
    KmsServer::start("127.0.0.1:0", endpoint, false).unwrap()
}

/// A keep-alive connection speaking just enough HTTP/1.1.
struct Connection {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
}

impl Connection {
    fn open(server: &KmsServer) -> Connection {
        let stream = TcpStream::connect(server.local_addr()).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(20)))
            .unwrap();
        Connection {
            reader: BufReader::new(stream.try_clone().unwrap()),
            writer: stream,
        }
    }

    fn send(&mut self, method: &str, operation: &str, body: &str) {
        write!(
            self.writer,
            "{method} / HTTP/1.1\r\nHost: kms\r\nX-Amz-Target: TrentService.{operation}\r\nContent-Type: application/x-amz-json-1.1\r\nAuthorization: {AUTH}\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .unwrap();
    }

    /// The status and JSON body of the next answer on this connection.
    fn answer(&mut self) -> (u16, Value) {
        let mut status_line = String::new();
        self.reader.read_line(&mut status_line).unwrap();
        let status: u16 = status_line.split(' ').nth(1).unwrap().parse().unwrap();
        let mut length = 0;
        loop {
            let mut line = String::new();
            self.reader.read_line(&mut line).unwrap();
            if line == "\r\n" {
                break;
            }
            if let Some((name, value)) = line.split_once(':') {
                if name.eq_ignore_ascii_case("content-length") {
                    length = value.trim().parse().unwrap();
                }
            }
        }
        let mut body = vec![0; length];
        self.reader.read_exact(&mut body).unwrap();
        (status, serde_json::from_slice(&body).unwrap_or(Value::Null))
    }

    fn call(&mut self, operation: &str, body: &str) -> (u16, Value) {
        self.send("POST", operation, body);
        self.answer()
    }
}

#[test]
fn one_connection_carries_many_requests() {
    let server = server();
    let mut connection = Connection::open(&server);
    let (status, created) = connection.call("CreateKey", "{}");
    assert_eq!(status, 200, "{created}");
    let key = created["KeyMetadata"]["KeyId"]
        .as_str()
        .unwrap()
        .to_string();
    for _ in 0..20 {
        let (status, sealed) = connection.call(
            "Encrypt",
            &format!(r#"{{"KeyId":"{key}","Plaintext":"aGVsbG8="}}"#),
        );
        assert_eq!(status, 200, "{sealed}");
    }
    // An error does not close the connection either.
    let (status, error) = connection.call("Encrypt", "{not json");
    assert_eq!(
        (status, error["__type"].as_str()),
        (400, Some("SerializationException"))
    );
    assert_eq!(connection.call("ListKeys", "{}").0, 200);
}

#[test]
fn a_stalled_client_holds_up_nobody_and_many_clients_are_served_at_once() {
    let server = server();
    let key = Connection::open(&server).call("CreateKey", "{}").1["KeyMetadata"]["KeyId"]
        .as_str()
        .unwrap()
        .to_string();
    // Half a request's headers, then nothing.
    let mut stalled = TcpStream::connect(server.local_addr()).unwrap();
    stalled
        .write_all(b"POST / HTTP/1.1\r\nHost: kms\r\nContent-Le")
        .unwrap();
    // And a body promised but never sent.
    let mut starved = Connection::open(&server);
    write!(
        starved.writer,
        "POST / HTTP/1.1\r\nHost: kms\r\nX-Amz-Target: TrentService.ListKeys\r\nContent-Length: 100\r\n\r\n{{"
    )
    .unwrap();
    std::thread::scope(|scope| {
        for _ in 0..8 {
            let (server, key) = (&server, &key);
            scope.spawn(move || {
                let mut connection = Connection::open(server);
                for _ in 0..25 {
                    let (status, answer) = connection.call(
                        "Encrypt",
                        &format!(r#"{{"KeyId":"{key}","Plaintext":"aGVsbG8="}}"#),
                    );
                    assert_eq!(status, 200, "{answer}");
                }
            });
        }
    });
    drop((stalled, starved));
}

#[test]
fn what_is_not_a_kms_request_gets_aws_shaped_refusals() {
    let server = server();
    let mut connection = Connection::open(&server);
    connection.send("GET", "ListKeys", "");
    let (status, answer) = connection.answer();
    assert_eq!(
        (status, answer["__type"].as_str()),
        (405, Some("MethodNotAllowedException"))
    );
    // A body over the limit is refused from its declared length, unread.
    let mut big = Connection::open(&server);
    write!(
        big.writer,
        "POST / HTTP/1.1\r\nHost: kms\r\nX-Amz-Target: TrentService.ListKeys\r\nContent-Length: 10000000\r\n\r\n"
    )
    .unwrap();
    let (status, answer) = big.answer();
    assert_eq!(
        (status, answer["__type"].as_str()),
        (413, Some("RequestEntityTooLargeException"))
    );
}
