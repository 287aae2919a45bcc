//! The built `s3ferry` binary as a child process: its JSON log lines collected for the test,
//! the addresses it logs at start-up, signals, and its exit status.

use std::net::SocketAddr;
use std::path::Path;
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::AsyncBufReadExt as _;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// Longest wait for anything the process is expected to log or do.
const PATIENCE: Duration = Duration::from_secs(60);

pub struct GatewayProcess {
    child: tokio::process::Child,
    pub pid: u32,
    pub addr: SocketAddr,
    pub admin_addr: SocketAddr,
    lines: Arc<Mutex<Vec<String>>>,
    line_count: watch::Receiver<usize>,
    reader: Option<JoinHandle<()>>,
}

impl GatewayProcess {
    /// `s3ferry serve --config <config> --log-format json`, waiting until it listens.
    pub async fn start(config: &Path) -> Self {
        Self::start_with(config, &["--log-format", "json"], &[]).await
    }

    /// `s3ferry serve --config <config> <args>` with extra environment variables; the logs must
    /// come out as JSON (by argument or environment).
    pub async fn start_with(config: &Path, args: &[&str], env: &[(&str, &str)]) -> Self {
        let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_s3ferry"));
        command
            .args(["serve", "--config"])
            .arg(config)
            .args(args)
            .env("RUST_LOG", "info")
            .env_remove("S3FERRY_LOG_FORMAT")
            .env_remove("S3FERRY_LISTEN")
            .env_remove("S3FERRY_ADMIN_LISTEN")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true);
        for (name, value) in env {
            command.env(name, value);
        }
        let mut child = command.spawn().expect("spawn s3ferry");
        let pid = child.id().expect("pid");
        let mut stdout = tokio::io::BufReader::new(child.stdout.take().expect("stdout")).lines();
        let lines = Arc::new(Mutex::new(Vec::new()));
        let (count_tx, line_count) = watch::channel(0usize);
        let sink = lines.clone();
        let reader = tokio::spawn(async move {
            while let Ok(Some(line)) = stdout.next_line().await {
                let count = {
                    let mut lines = sink.lock().expect("log lines");
                    lines.push(line);
                    lines.len()
                };
                let _ = count_tx.send(count);
            }
        });
        let mut process = Self {
            child,
            pid,
            addr: SocketAddr::from(([0, 0, 0, 0], 0)),
            admin_addr: SocketAddr::from(([0, 0, 0, 0], 0)),
            lines,
            line_count,
            reader: Some(reader),
        };
        let listening = process
            .wait_for(0, "the start-up event", |e| e["message"] == "s3ferry listening")
            .await;
        let address = |field: &str| -> SocketAddr {
            listening[field]
                .as_str()
                .unwrap_or_else(|| panic!("{field} in {listening}"))
                .parse()
                .expect("socket address")
        };
        process.addr = address("addr");
        process.admin_addr = address("admin_addr");
        process
    }

    /// How many log lines there are now: pass it to [`GatewayProcess::wait_for`] to look only at
    /// what comes after.
    pub fn mark(&self) -> usize {
        self.lines.lock().expect("log lines").len()
    }

    /// Every log line so far.
    pub fn lines(&self) -> Vec<String> {
        self.lines.lock().expect("log lines").clone()
    }

    /// The first JSON log event after line `after` that `matches`, waiting for it (bounded).
    pub async fn wait_for(
        &self,
        after: usize,
        what: &str,
        matches: impl Fn(&serde_json::Value) -> bool,
    ) -> serde_json::Value {
        let mut count = self.line_count.clone();
        let deadline = tokio::time::Instant::now() + PATIENCE;
        loop {
            count.borrow_and_update();
            let found = self.lines().iter().skip(after).find_map(|line| {
                let event: serde_json::Value =
                    serde_json::from_str(line).unwrap_or_else(|e| panic!("log line is not JSON ({e}): {line}"));
                matches(&event).then_some(event)
            });
            if let Some(event) = found {
                return event;
            }
            match tokio::time::timeout_at(deadline, count.changed()).await {
                Ok(Ok(())) => {}
                Ok(Err(_)) => panic!(
                    "s3ferry exited before logging {what}; log:\n{}",
                    self.lines().join("\n")
                ),
                Err(_) => panic!(
                    "s3ferry did not log {what} within {PATIENCE:?}; log:\n{}",
                    self.lines().join("\n")
                ),
            }
        }
    }

    /// Sends a signal by name (`TERM`, `HUP`, ...) with the `kill` command.
    pub fn signal(&self, name: &str) {
        let status = std::process::Command::new("kill")
            .args(["-s", name, &self.pid.to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -s {name} {} failed", self.pid);
    }

    /// Waits (bounded) for the process to exit and for its last log line to be read.
    pub async fn wait_exit(&mut self) -> ExitStatus {
        let status = tokio::time::timeout(PATIENCE, self.child.wait())
            .await
            .unwrap_or_else(|_| panic!("s3ferry did not exit within {PATIENCE:?}"))
            .expect("wait for s3ferry");
        if let Some(reader) = self.reader.take() {
            tokio::time::timeout(PATIENCE, reader)
                .await
                .expect("stdout closes after exit")
                .expect("log reader");
        }
        status
    }
}

/// Writes a config file into `dir` and returns its path.
pub fn write_config(dir: &Path, toml: &str) -> std::path::PathBuf {
    let path = dir.join("config.toml");
    std::fs::write(&path, toml).expect("write config");
    path
}
