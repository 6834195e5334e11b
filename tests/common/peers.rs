//! The independent peers the wire tests run against, from PyPI: moto's server and boto3,
//! installed by `.ci/bootstrap` into a virtual environment. A missing peer fails the test
//! with the command that installs it; nothing is skipped.

use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The virtual environment: `ATREST_PEERS`, or `~/.cache/atrest/peers` as bootstrap makes it.
pub fn venv() -> PathBuf {
    std::env::var_os("ATREST_PEERS")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").expect("HOME is set"))
                .join(".cache/atrest/peers")
        })
}

/// A program of the virtual environment; panics, saying how to install it, if absent.
pub fn venv_program(name: &str) -> PathBuf {
    let path = venv().join("bin").join(name);
    assert!(
        path.exists(),
        "{} is missing: run `.ci/bootstrap` (it installs moto[server] and boto3 from PyPI into {}), or set ATREST_PEERS to such a virtual environment",
        path.display(),
        venv().display()
    );
    path
}

/// A moto server: the one `.ci/run` started (`ATREST_MOTO_URL`), or one started here and
/// killed when dropped.
pub struct Moto {
    pub url: String,
    child: Option<Child>,
}

impl Moto {
    pub fn start() -> Moto {
        if let Ok(url) = std::env::var("ATREST_MOTO_URL") {
            return Moto { url, child: None };
        }
        let port = free_port();
        let child = Command::new(venv_program("moto_server"))
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("moto_server starts");
        wait_for_port(port, Duration::from_secs(30));
        Moto {
            url: format!("http://127.0.0.1:{port}"),
            child: Some(child),
        }
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        if let Some(child) = &mut self.child {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// `atrest kms serve` on a free port of 127.0.0.1, killed when dropped.
pub struct Served {
    pub url: String,
    child: Child,
}

impl Served {
    pub fn start(root: &std::path::Path, extra: &[&str]) -> Served {
        Self::start_on(root, "127.0.0.1:0", extra)
    }

    pub fn start_on(root: &std::path::Path, listen: &str, extra: &[&str]) -> Served {
        Self::serve(root, &["kms", "serve", "--listen", listen], extra)
    }

    /// `atrest atlas serve` on a free port of 127.0.0.1.
    pub fn start_atlas(root: &std::path::Path) -> Served {
        Self::serve(root, &["atlas", "serve", "--listen", "127.0.0.1:0"], &[])
    }

    fn serve(root: &std::path::Path, command: &[&str], extra: &[&str]) -> Served {
        let mut child = Command::new(env!("CARGO_BIN_EXE_atrest"))
            .arg("--root")
            .arg(root)
            .args(command)
            .args(extra)
            .stdout(Stdio::piped())
            .spawn()
            .expect("atrest serve starts");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("stdout is piped"))
            .read_line(&mut line)
            .expect("atrest serve prints its address");
        let url = line
            .trim()
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
            .to_string();
        Served { url, child }
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port on 127.0.0.1")
}

fn wait_for_port(port: u16, limit: Duration) {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let start = Instant::now();
    while TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
        assert!(
            start.elapsed() < limit,
            "nothing listens on {addr} after {limit:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}
