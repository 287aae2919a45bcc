//! `s3ferry probe`: asks one configured provider what it accepts and prints the settings that
//! fit (see `s3ferry::probe`).

use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use s3ferry::probe::report::{differences, render_text, suggest};
use s3ferry::probe::{ProbeOptions, probe};

use super::{Outcome, load, runtime};

/// What to probe, from the command line.
pub struct ProbeArgs<'a> {
    pub config: &'a Path,
    pub provider: &'a str,
    pub bucket: Option<String>,
    pub write: bool,
    pub json: bool,
    pub timeout: Duration,
}

pub fn probe_command(args: ProbeArgs<'_>) -> Outcome {
    let config = load(args.config)?;
    let rt = runtime()?;
    rt.block_on(async {
        let (providers, _local) = s3ferry::server::start_providers(&config).await.map_err(|e| {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        })?;
        let Some(upstream) = providers.get(args.provider) else {
            let known: Vec<&str> = providers.keys().map(String::as_str).collect();
            eprintln!(
                "error: no provider '{}' in {} (configured: {})",
                args.provider,
                args.config.display(),
                known.join(", ")
            );
            return Err(ExitCode::FAILURE);
        };
        let settings = &upstream.settings;
        let options = ProbeOptions {
            bucket: args.bucket,
            write: args.write,
            timeout: args.timeout,
        };
        let findings = probe(settings, &options).await.map_err(|e| {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        })?;
        let suggestion = suggest(&findings, settings.addressing);
        let differ = differences(&suggestion, settings.addressing, settings.signature, &settings.profile);
        if args.json {
            let report = serde_json::json!({
                "findings": findings,
                "suggestion": suggestion,
                "differences": differ,
                "toml": s3ferry::probe::report::overrides_toml(&findings.provider, &suggestion),
            });
            println!("{}", serde_json::to_string_pretty(&report).unwrap_or_default());
        } else {
            print!("{}", render_text(&findings, &suggestion, &differ));
        }
        Ok(ExitCode::SUCCESS)
    })
}
