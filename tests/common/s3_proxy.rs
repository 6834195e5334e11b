//! A proxy in front of moto's S3 that can fail requests on purpose: answer with an error
//! status, drop the connection, hang, or cut a response's body short. Each request is
//! forwarded on a fresh upstream connection and answered with `Connection: close`.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// What the proxy does with one request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    Pass,
    /// Answer this status with an S3 error body of this code.
    Reply(u16, &'static str),
    /// Close the connection without an answer.
    Drop,
    /// Never answer (until the proxy is dropped).
    Hang,
    /// Forward the answer's head and this many bytes of its body, then close.
    CutBodyAfter(usize),
}

/// A request as the rule sees it.
pub struct Seen<'a> {
    pub method: &'a str,
    /// Path and query.
    pub target: &'a str,
}

impl Seen<'_> {
    pub fn is_upload_part(&self) -> bool {
        self.method == "PUT" && self.target.contains("partNumber=")
    }
    pub fn is_get(&self) -> bool {
        self.method == "GET"
            && !self.target.contains("uploads")
            && !self.target.contains("list-type")
    }
}

type Rule = Box<dyn FnMut(&Seen<'_>) -> Fault + Send>;

pub struct FaultyS3 {
    pub url: String,
    rule: Arc<Mutex<Rule>>,
    /// Every request line seen, with the fault applied.
    pub log: Arc<Mutex<Vec<(String, Fault)>>>,
    stop: Arc<AtomicBool>,
}

impl FaultyS3 {
    pub fn start(upstream: &str) -> FaultyS3 {
        let upstream = upstream
            .trim_start_matches("http://")
            .trim_end_matches('/')
            .to_string();
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let rule: Arc<Mutex<Rule>> = Arc::new(Mutex::new(Box::new(|_: &Seen<'_>| Fault::Pass)));
        let log = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (r, l, s) = (rule.clone(), log.clone(), stop.clone());
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                if s.load(Ordering::SeqCst) {
                    return;
                }
                let Ok(conn) = conn else { continue };
                let (r, l, s, up) = (r.clone(), l.clone(), s.clone(), upstream.clone());
                std::thread::spawn(move || serve(conn, &up, &r, &l, &s));
            }
        });
        FaultyS3 {
            url,
            rule,
            log,
            stop,
        }
    }

    /// From now on, `rule` decides each request's fate.
    pub fn set_rule(&self, rule: impl FnMut(&Seen<'_>) -> Fault + Send + 'static) {
        *self.rule.lock().unwrap() = Box::new(rule);
    }

    /// How many requests matched `what` and met `fault`.
    pub fn count(&self, what: impl Fn(&str) -> bool, fault: Fault) -> usize {
        self.log
            .lock()
            .unwrap()
            .iter()
            .filter(|(line, f)| what(line) && *f == fault)
            .count()
    }
}

impl Drop for FaultyS3 {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wakes the accept loop so that it sees the flag.
        let _ = TcpStream::connect(self.url.trim_start_matches("http://"));
    }
}

fn serve(
    conn: TcpStream,
    upstream: &str,
    rule: &Mutex<Rule>,
    log: &Mutex<Vec<(String, Fault)>>,
    stop: &AtomicBool,
) {
    let mut client = BufReader::new(conn);
    let mut head = String::new();
    loop {
        let mut line = String::new();
        if client.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let end = line == "\r\n";
        let lower = line.to_ascii_lowercase();
        if !lower.starts_with("connection:") {
            if end {
                head.push_str("Connection: close\r\n");
            }
            head.push_str(&line);
        }
        if end {
            break;
        }
    }
    let request_line = head.lines().next().unwrap_or_default().to_string();
    let mut parts = request_line.split(' ');
    let (method, target) = (
        parts.next().unwrap_or_default().to_string(),
        parts.next().unwrap_or_default().to_string(),
    );
    let length: usize = head
        .lines()
        .find_map(|l| {
            let (name, value) = l.split_once(':')?;
            name.eq_ignore_ascii_case("content-length")
                .then(|| value.trim().parse().ok())?
        })
        .unwrap_or(0);
    assert!(
        !head
            .to_ascii_lowercase()
            .contains("transfer-encoding: chunked"),
        "the proxy forwards only bodies with a Content-Length: {head}"
    );
    let mut body = vec![0u8; length];
    if client.read_exact(&mut body).is_err() {
        return;
    }
    let fault = (rule.lock().unwrap())(&Seen {
        method: &method,
        target: &target,
    });
    log.lock().unwrap().push((request_line, fault));
    let mut conn = client.into_inner();
    match fault {
        Fault::Drop => {
            let _ = conn.shutdown(Shutdown::Both);
        }
        Fault::Hang => {
            while !stop.load(Ordering::SeqCst) {
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        Fault::Reply(status, code) => {
            let xml = format!(
                "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>{code}</Code><Message>injected by the test proxy</Message></Error>"
            );
            let _ = write!(
                conn,
                "HTTP/1.1 {status} Injected\r\nContent-Type: application/xml\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{xml}",
                xml.len()
            );
        }
        Fault::Pass | Fault::CutBodyAfter(_) => {
            let Ok(mut up) = TcpStream::connect(upstream) else {
                return;
            };
            if up.write_all(head.as_bytes()).is_err() || up.write_all(&body).is_err() {
                return;
            }
            let mut answer = Vec::new();
            let _ = up.read_to_end(&mut answer);
            let keep = match fault {
                Fault::CutBodyAfter(n) => {
                    let head_end = answer
                        .windows(4)
                        .position(|w| w == b"\r\n\r\n")
                        .map_or(answer.len(), |p| p + 4);
                    (head_end + n).min(answer.len())
                }
                _ => answer.len(),
            };
            let _ = conn.write_all(&answer[..keep]);
            let _ = conn.shutdown(Shutdown::Both);
        }
    }
}
