//! `s3ferry serve` (the gateway until a stop signal, reloading on SIGHUP), the signals it
//! and the bulk commands listen for, and `s3ferry health`.

use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use s3ferry::server::{self, RunningGateway};

use super::{Outcome, load, runtime};

/// `s3ferry serve`: the gateway until a stop signal, reloading on SIGHUP.
pub(super) fn serve(path: &Path) -> Outcome {
    let config = load(path)?;
    let runtime = runtime()?;
    Ok(runtime.block_on(async move {
        // Registered before start-up: an unhandled SIGHUP would kill the process.
        let mut signals = match Signals::register() {
            Ok(s) => s,
            Err(e) => {
                eprintln!("error: cannot listen for signals: {e}");
                return ExitCode::FAILURE;
            }
        };
        let running = match server::start(&config).await {
            Ok(r) => r,
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::FAILURE;
            }
        };
        run_until_stopped(running, &mut signals, path).await;
        tracing::info!("stopped");
        ExitCode::SUCCESS
    }))
}

/// Reloads on SIGHUP; on SIGTERM or SIGINT stops accepting and waits for the drain.
async fn run_until_stopped(running: RunningGateway, signals: &mut Signals, path: &Path) {
    while let Signal::Reload = signals.next().await {
        match running.reload_from(path).await {
            Ok(()) => tracing::info!(config = %path.display(), "config reloaded"),
            Err(e) => tracing::error!(
                config = %path.display(),
                error = %e,
                "config reload refused; the previous config keeps serving"
            ),
        }
    }
    tracing::info!(
        grace_ms = u64::try_from(running.shutdown_grace().as_millis()).unwrap_or(u64::MAX),
        "stop signal: no new connections; in-flight requests may finish"
    );
    let _ = running.stopper().send(true);
    running.wait().await;
}

/// `s3ferry health`: asks an admin URL; success on a 2xx answer.
pub(super) fn health(url: &str, timeout: Duration) -> Outcome {
    let runtime = runtime()?;
    Ok(match runtime.block_on(s3ferry::admin::check_health(url, timeout)) {
        Ok((status, body)) => {
            print!("{body}");
            if status.is_success() {
                ExitCode::SUCCESS
            } else {
                eprintln!("{url} answered {status}");
                ExitCode::FAILURE
            }
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    })
}

enum Signal {
    Stop,
    Reload,
}

/// SIGTERM / SIGINT (stop) and SIGHUP (reload).
pub(super) struct Signals {
    #[cfg(unix)]
    terminate: tokio::signal::unix::Signal,
    #[cfg(unix)]
    interrupt: tokio::signal::unix::Signal,
    #[cfg(unix)]
    hangup: tokio::signal::unix::Signal,
}

impl Signals {
    pub(super) fn register() -> std::io::Result<Self> {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            Ok(Self {
                terminate: signal(SignalKind::terminate())?,
                interrupt: signal(SignalKind::interrupt())?,
                hangup: signal(SignalKind::hangup())?,
            })
        }
        #[cfg(not(unix))]
        {
            Ok(Self {})
        }
    }

    async fn next(&mut self) -> Signal {
        #[cfg(unix)]
        {
            tokio::select! {
                _ = self.terminate.recv() => Signal::Stop,
                _ = self.interrupt.recv() => Signal::Stop,
                _ = self.hangup.recv() => Signal::Reload,
            }
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
            Signal::Stop
        }
    }

    /// Waits for SIGTERM or SIGINT; SIGHUP is ignored (for commands that have nothing to reload).
    pub(super) async fn stopped(&mut self) {
        while let Signal::Reload = self.next().await {}
    }
}
