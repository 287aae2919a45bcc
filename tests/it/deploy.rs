//! The deployment examples — the Kubernetes manifests and the systemd unit in docs/deploy.md,
//! and the Dockerfile — name commands, flags, ports, paths and secrets the binary really has.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Output;

use s3ferry::admin::{HEALTHZ, METRICS, READYZ};
use s3ferry::config::{Config, ProviderKind};
use serde::Deserialize as _;
use serde_norway::Value;

const DEPLOY_MD: &str = include_str!("../../docs/deploy.md");
const DOCKERFILE: &str = include_str!("../../Dockerfile");
const EXAMPLE_CONFIG: &str = include_str!("../../config.example.toml");

/// The bodies of the fenced code blocks of `language` in a Markdown text.
fn fenced_blocks(markdown: &str, language: &str) -> Vec<String> {
    let opening = format!("```{language}");
    let mut blocks = Vec::new();
    let mut current: Option<String> = None;
    for line in markdown.lines() {
        match &mut current {
            None if line.trim_end() == opening => current = Some(String::new()),
            None => {}
            Some(_) if line.trim_end() == "```" => blocks.extend(current.take()),
            Some(block) => {
                block.push_str(line);
                block.push('\n');
            }
        }
    }
    blocks
}

/// Whether the binary accepts these arguments: clap refuses an unknown subcommand or flag
/// before it gets to `--help`, and `--help` keeps anything from running.
fn binary_accepts(args: &[&str]) -> bool {
    std::process::Command::new(env!("CARGO_BIN_EXE_s3ferry"))
        .args(args)
        .arg("--help")
        .output()
        .expect("run s3ferry")
        .status
        .success()
}

/// `s3ferry config check` on `text`, with only `env` in the environment (so the config needs
/// nothing the deployment does not provide). `base` stands for the config file's directory.
fn config_check(text: &str, env: &BTreeMap<String, String>) -> Output {
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("config.toml");
    std::fs::write(&path, text).expect("write config");
    std::process::Command::new(env!("CARGO_BIN_EXE_s3ferry"))
        .args(["config", "check", "--config"])
        .arg(&path)
        .env_clear()
        .envs(env)
        .output()
        .expect("run s3ferry config check")
}

fn parse_config(text: &str, env: &BTreeMap<String, String>) -> Config {
    Config::parse(text, "deploy example", Path::new("/etc/s3ferry"), &|name| {
        env.get(name).cloned()
    })
    .expect("the example config parses")
}

/// The value after `flag` in an argument list.
fn flag_value<'a>(args: &[&'a str], flag: &str) -> &'a str {
    let at = args
        .iter()
        .position(|a| *a == flag)
        .unwrap_or_else(|| panic!("{flag} in {args:?}"));
    args.get(at + 1)
        .unwrap_or_else(|| panic!("a value after {flag} in {args:?}"))
}

fn strings(value: &Value) -> Vec<&str> {
    value
        .as_sequence()
        .unwrap_or_else(|| panic!("a list: {value:?}"))
        .iter()
        .map(|v| v.as_str().unwrap_or_else(|| panic!("a string: {v:?}")))
        .collect()
}

fn text<'a>(value: &'a Value, what: &str) -> &'a str {
    value
        .as_str()
        .unwrap_or_else(|| panic!("{what} is a string: {value:?}"))
}

/// Every Kubernetes object in the YAML blocks of docs/deploy.md.
fn kubernetes_objects() -> Vec<Value> {
    fenced_blocks(DEPLOY_MD, "yaml")
        .iter()
        .flat_map(|block| {
            serde_norway::Deserializer::from_str(block)
                .map(|doc| Value::deserialize(doc).expect("valid YAML"))
                .collect::<Vec<_>>()
        })
        .collect()
}

/// A container's environment, with `secretKeyRef`s resolved from `secret`'s `stringData`.
fn container_env(container: &Value, secret: &Value) -> BTreeMap<String, String> {
    let secret_name = text(&secret["metadata"]["name"], "Secret name");
    let mut env = BTreeMap::new();
    for var in container["env"].as_sequence().expect("env list") {
        let name = text(&var["name"], "env name").to_string();
        let value = if let Some(v) = var["value"].as_str() {
            v.to_string()
        } else {
            let reference = &var["valueFrom"]["secretKeyRef"];
            assert_eq!(
                text(&reference["name"], "secretKeyRef.name"),
                secret_name,
                "{name} comes from the Secret in the example"
            );
            let key = text(&reference["key"], "secretKeyRef.key");
            text(&secret["stringData"][key], "the referenced Secret key").to_string()
        };
        env.insert(name, value);
    }
    env
}

/// A probe's or annotation's port, by number or by the container port's name.
fn port_number(port: &Value, container: &Value) -> u16 {
    if let Some(n) = port.as_u64() {
        return u16::try_from(n).expect("port");
    }
    let name = text(port, "port name");
    container["ports"]
        .as_sequence()
        .expect("ports")
        .iter()
        .find(|p| p["name"].as_str() == Some(name))
        .and_then(|p| p["containerPort"].as_u64())
        .and_then(|n| u16::try_from(n).ok())
        .unwrap_or_else(|| panic!("a container port named {name}"))
}

#[test]
fn kubernetes_sidecar_example_matches_the_binary() {
    let objects = kubernetes_objects();
    let of_kind = |kind: &str| {
        objects
            .iter()
            .find(|o| o["kind"].as_str() == Some(kind))
            .unwrap_or_else(|| panic!("a {kind} in docs/deploy.md"))
    };
    let (config_map, secret, deployment) = (of_kind("ConfigMap"), of_kind("Secret"), of_kind("Deployment"));
    let pod = &deployment["spec"]["template"]["spec"];
    let init = pod["initContainers"].as_sequence().expect("initContainers");
    let is_serve = |c: &&Value| c["args"].as_sequence().is_some() && strings(&c["args"]).first() == Some(&"serve");
    let sidecar_at = init
        .iter()
        .position(|c| is_serve(&c))
        .expect("s3ferry serve as a sidecar");
    let sidecar = &init[sidecar_at];
    let check_at = init
        .iter()
        .position(|c| strings(&c["args"]).starts_with(&["config", "check"]))
        .expect("a config check init container");
    assert!(check_at < sidecar_at, "the config is checked before the sidecar starts");
    assert_eq!(
        sidecar["restartPolicy"].as_str(),
        Some("Always"),
        "a native sidecar: stopped after the app"
    );
    let check = &init[check_at];

    // Commands and flags exist.
    let serve_args = strings(&sidecar["args"]);
    let check_args = strings(&check["args"]);
    assert!(binary_accepts(&serve_args), "{serve_args:?}");
    assert!(binary_accepts(&check_args), "{check_args:?}");

    // The config path is the ConfigMap's file, mounted where both containers read it.
    let config_path = Path::new(flag_value(&serve_args, "--config"));
    assert_eq!(
        flag_value(&check_args, "--config"),
        config_path.to_str().expect("utf-8")
    );
    let mount_dir = config_path.parent().expect("dir").to_str().expect("utf-8");
    let file_name = config_path.file_name().expect("file").to_str().expect("utf-8");
    for container in [sidecar, check] {
        let mount = container["volumeMounts"]
            .as_sequence()
            .expect("volumeMounts")
            .iter()
            .find(|m| m["mountPath"].as_str() == Some(mount_dir))
            .unwrap_or_else(|| panic!("{mount_dir} mounted in {}", container["name"].as_str().unwrap_or("?")));
        let volume = pod["volumes"]
            .as_sequence()
            .expect("volumes")
            .iter()
            .find(|v| v["name"] == mount["name"])
            .expect("the mounted volume");
        assert_eq!(volume["configMap"]["name"], config_map["metadata"]["name"]);
    }
    let config_text = text(&config_map["data"][file_name], "the ConfigMap's config file");

    // The config checks with exactly the environment the manifests give the containers.
    let env = container_env(sidecar, secret);
    assert_eq!(
        container_env(check, secret),
        env,
        "both containers see the same secrets"
    );
    let checked = config_check(config_text, &env);
    assert!(
        checked.status.success(),
        "config check: {}{}",
        String::from_utf8_lossy(&checked.stdout),
        String::from_utf8_lossy(&checked.stderr)
    );
    let config = parse_config(config_text, &env);

    // Ports: S3 and admin as configured; probes on the admin port, reachable from the node.
    let (s3_port, admin_port) = (config.server.listen.port(), config.server.admin_listen.port());
    let declared: Vec<u64> = sidecar["ports"]
        .as_sequence()
        .expect("ports")
        .iter()
        .filter_map(|p| p["containerPort"].as_u64())
        .collect();
    assert!(declared.contains(&u64::from(s3_port)) && declared.contains(&u64::from(admin_port)));
    assert!(
        config.server.admin_listen.ip().is_unspecified(),
        "the kubelet probes the pod's address, so the admin listener binds all interfaces"
    );
    for (probe, path) in [
        ("startupProbe", HEALTHZ),
        ("livenessProbe", HEALTHZ),
        ("readinessProbe", READYZ),
    ] {
        let get = &sidecar[probe]["httpGet"];
        assert_eq!(get["path"].as_str(), Some(path), "{probe}");
        assert_eq!(port_number(&get["port"], sidecar), admin_port, "{probe}");
    }
    let probe_timeout = sidecar["readinessProbe"]["timeoutSeconds"]
        .as_u64()
        .expect("timeoutSeconds");
    assert!(probe_timeout > config.server.readiness_timeout.as_secs());
    let annotations = &deployment["spec"]["template"]["metadata"]["annotations"];
    assert_eq!(
        text(&annotations["prometheus.io/port"], "scrape port"),
        admin_port.to_string()
    );
    assert_eq!(annotations["prometheus.io/path"].as_str(), Some(METRICS));
    let grace = pod["terminationGracePeriodSeconds"].as_u64().expect("grace");
    assert!(
        grace > config.server.shutdown_grace.as_secs(),
        "Kubernetes kills after {grace} s, the drain may take {:?}",
        config.server.shutdown_grace
    );

    // The app signs with a key pair the gateway accepts and talks to the sidecar's port.
    let app = pod["containers"]
        .as_sequence()
        .expect("containers")
        .iter()
        .find(|c| !c["env"].is_null())
        .expect("the app container");
    let app_env = container_env(app, secret);
    assert_eq!(app_env["AWS_ENDPOINT_URL"], format!("http://localhost:{s3_port}"));
    let credential = config
        .credentials
        .iter()
        .find(|c| c.access_key_id == app_env["AWS_ACCESS_KEY_ID"])
        .expect("the app's key id is a [[credentials]] entry");
    assert_eq!(credential.secret_access_key.expose(), app_env["AWS_SECRET_ACCESS_KEY"]);
}

/// `Key=Value` lines of a systemd unit, by section, in order (keys may repeat).
fn unit_entries(unit: &str) -> Vec<(String, String, String)> {
    let mut section = String::new();
    let mut entries = Vec::new();
    for line in unit.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            section = name.to_string();
        } else if let Some((key, value)) = line.split_once('=') {
            entries.push((section.clone(), key.to_string(), value.to_string()));
        }
    }
    entries
}

#[test]
fn systemd_unit_runs_real_commands_on_a_config_that_checks() {
    let units = fenced_blocks(DEPLOY_MD, "ini");
    assert_eq!(units.len(), 1, "one unit in docs/deploy.md");
    let entries = unit_entries(&units[0]);
    let service = |key: &str| -> Vec<&str> {
        entries
            .iter()
            .filter(|(s, k, _)| s == "Service" && k == key)
            .map(|(_, _, v)| v.as_str())
            .collect()
    };
    let one = |key: &str| -> &str {
        let values = service(key);
        assert_eq!(values.len(), 1, "one {key}");
        values[0]
    };
    assert!(DEPLOY_MD.contains("/etc/systemd/system/s3ferry.service"));

    let start: Vec<&str> = one("ExecStart").split_whitespace().collect();
    let pre: Vec<&str> = one("ExecStartPre").split_whitespace().collect();
    assert!(
        start[0].ends_with("/s3ferry") && start[0] == pre[0],
        "{start:?} {pre:?}"
    );
    assert_eq!(start[1], "serve");
    assert_eq!(&pre[1..3], ["config", "check"]);
    assert!(binary_accepts(&start[1..]), "{start:?}");
    assert!(binary_accepts(&pre[1..]), "{pre:?}");
    assert_eq!(flag_value(&start, "--config"), flag_value(&pre, "--config"));
    let reload = one("ExecReload");
    assert!(reload.contains("-HUP") && reload.contains("$MAINPID"), "{reload}");
    assert!(matches!(one("KillSignal"), "SIGTERM" | "SIGINT"));

    // The config block: secrets from the credentials systemd loads, data in the state directory.
    let configs = fenced_blocks(DEPLOY_MD, "toml");
    assert_eq!(configs.len(), 1, "one host config in docs/deploy.md");
    let credentials = tempfile::tempdir().expect("dir");
    for entry in service("LoadCredential") {
        let (name, source) = entry.split_once(':').expect("NAME:PATH");
        assert!(source.starts_with('/'), "{source}");
        std::fs::write(credentials.path().join(name), format!("{name}-value\n")).expect("credential");
    }
    let config_text = configs[0].replace(
        "/run/credentials/s3ferry.service/",
        &format!("{}/", credentials.path().display()),
    );
    let env: BTreeMap<String, String> = service("Environment")
        .iter()
        .filter_map(|e| e.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let checked = config_check(&config_text, &env);
    assert!(
        checked.status.success(),
        "config check: {}{}",
        String::from_utf8_lossy(&checked.stdout),
        String::from_utf8_lossy(&checked.stderr)
    );
    let config = parse_config(&config_text, &env);
    let state_dir = Path::new("/var/lib").join(one("StateDirectory"));
    for provider in config.providers.values() {
        if let ProviderKind::Local { root } = &provider.kind {
            assert!(
                root.starts_with(&state_dir),
                "ProtectSystem=strict leaves only {} writable, not {}",
                state_dir.display(),
                root.display()
            );
        }
    }
    let stop_timeout: u64 = one("TimeoutStopSec").parse().expect("seconds");
    assert!(stop_timeout > config.server.shutdown_grace.as_secs());
}

/// The Dockerfile's instructions with continuation lines joined, comments dropped.
fn dockerfile_instructions() -> Vec<String> {
    let mut instructions = Vec::new();
    let mut current = String::new();
    for line in DOCKERFILE.lines() {
        if line.trim_start().starts_with('#') {
            continue;
        }
        match line.strip_suffix('\\') {
            Some(part) => current.push_str(part),
            None => {
                current.push_str(line);
                if !current.trim().is_empty() {
                    instructions.push(current.trim().to_string());
                }
                current.clear();
            }
        }
    }
    instructions
}

/// The JSON (exec form) argument list after `marker` in an instruction.
fn exec_form(instruction: &str, marker: &str) -> Vec<String> {
    let (_, rest) = instruction
        .split_once(marker)
        .unwrap_or_else(|| panic!("{marker} in {instruction}"));
    serde_json::from_str(rest.trim()).unwrap_or_else(|e| panic!("exec form ({e}): {rest}"))
}

#[test]
fn dockerfile_healthcheck_and_command_are_real_and_its_config_listens_on_all_interfaces() {
    let instructions = dockerfile_instructions();
    let find = |keyword: &str| -> &str {
        instructions
            .iter()
            .rfind(|i| i.starts_with(keyword))
            .unwrap_or_else(|| panic!("{keyword} in the Dockerfile"))
    };
    assert_eq!(exec_form(find("ENTRYPOINT"), "ENTRYPOINT"), ["s3ferry"]);
    let cmd = exec_form(find("CMD "), "CMD");
    let cmd: Vec<&str> = cmd.iter().map(String::as_str).collect();
    assert!(binary_accepts(&cmd), "{cmd:?}");
    let config_path = flag_value(&cmd, "--config");
    assert!(
        instructions
            .iter()
            .any(|i| i.starts_with("COPY") && i.ends_with(&format!(" {config_path}"))),
        "the image has {config_path}"
    );

    let health = exec_form(find("HEALTHCHECK"), " CMD ");
    let health: Vec<&str> = health.iter().map(String::as_str).collect();
    assert_eq!(health[0], "s3ferry");
    assert!(binary_accepts(&health[1..]), "{health:?}");
    let url: http::Uri = flag_value(&health, "--url").parse().expect("URL");
    assert_eq!(url.path(), HEALTHZ);

    // The image's config is config.example.toml through the Dockerfile's own sed expressions.
    let build = find("RUN mkdir");
    let expressions: Vec<&str> = build
        .split("-e '")
        .skip(1)
        .map(|rest| rest.split_once('\'').expect("closing quote").0)
        .collect();
    assert!(expressions.len() >= 3, "{build}");
    let dir = tempfile::tempdir().expect("dir");
    let example = dir.path().join("config.example.toml");
    std::fs::write(&example, EXAMPLE_CONFIG).expect("write");
    let mut sed = std::process::Command::new("sed");
    for e in &expressions {
        sed.args(["-e", e]);
    }
    let container = sed.arg(&example).output().expect("run sed");
    assert!(container.status.success());
    let container_config = String::from_utf8(container.stdout).expect("utf-8");
    let config = parse_config(&container_config, &BTreeMap::new());
    assert!(config.server.listen.ip().is_unspecified(), "{}", config.server.listen);
    assert!(
        config.server.admin_listen.ip().is_unspecified(),
        "{}",
        config.server.admin_listen
    );
    assert_eq!(url.port_u16(), Some(config.server.admin_listen.port()));
    let exposed: Vec<u16> = find("EXPOSE")
        .split_whitespace()
        .skip(1)
        .map(|p| p.parse().expect("port"))
        .collect();
    assert!(exposed.contains(&config.server.listen.port()) && exposed.contains(&config.server.admin_listen.port()));
    for provider in config.providers.values() {
        if let ProviderKind::Local { root } = &provider.kind {
            assert!(root.starts_with("/var/lib/s3ferry"), "{}", root.display());
        }
    }
}

/// A migration config whose providers are the test's upstreams: the manifest's routes, bucket
/// names and secret variables as written, each provider's endpoint and key id replaced (and
/// its addressing and dialect dropped: the stand-ins are plain path-style S3 servers).
fn config_against(manifest_config: &str, endpoints: &BTreeMap<String, String>) -> String {
    let mut config: toml::Table = manifest_config.parse().expect("the ConfigMap's config is TOML");
    let providers = config
        .get_mut("providers")
        .and_then(toml::Value::as_table_mut)
        .expect("providers");
    for (name, provider) in providers.iter_mut() {
        let provider = provider.as_table_mut().expect("a provider table");
        provider.insert("endpoint".into(), endpoints[name].clone().into());
        provider.insert("access_key_id".into(), crate::support::UPSTREAM_KEY.into());
        provider.remove("addressing");
        provider.remove("dialect");
    }
    toml::to_string(&config).expect("TOML")
}

#[tokio::test]
async fn kubernetes_migration_job_runs_one_shard_per_index_and_copies_the_bucket() {
    use crate::support::{TestUpstream, UPSTREAM_SECRET, put_objects};

    let objects = kubernetes_objects();
    let job = objects
        .iter()
        .find(|o| o["kind"].as_str() == Some("Job"))
        .expect("a Job in docs/deploy.md");
    let spec = &job["spec"];
    assert_eq!(spec["completionMode"].as_str(), Some("Indexed"));
    let completions = spec["completions"].as_u64().expect("completions");
    let parallelism = spec["parallelism"].as_u64().expect("parallelism");
    assert!(completions > 1 && parallelism == completions, "every shard at once");
    assert!(
        spec["backoffLimitPerIndex"].as_u64().is_some(),
        "failed shards are retried"
    );
    let pod = &spec["template"]["spec"];
    assert_eq!(
        pod["restartPolicy"].as_str(),
        Some("Never"),
        "backoffLimitPerIndex needs it"
    );
    let containers = pod["containers"].as_sequence().expect("containers");
    assert_eq!(containers.len(), 1);
    let container = &containers[0];
    let args = strings(&container["args"]);
    assert_eq!(args.first(), Some(&"migrate"));
    assert!(binary_accepts(&args), "{args:?}");

    // The Secret and ConfigMap the Job names.
    let secret_name = container["env"]
        .as_sequence()
        .expect("env")
        .iter()
        .find_map(|v| v["valueFrom"]["secretKeyRef"]["name"].as_str())
        .expect("secrets from a Secret");
    let named = |kind: &str, name: &str| {
        objects
            .iter()
            .find(|o| o["kind"].as_str() == Some(kind) && o["metadata"]["name"].as_str() == Some(name))
            .unwrap_or_else(|| panic!("the {kind} {name}"))
    };
    let secret = named("Secret", secret_name);
    let env = container_env(container, secret);
    assert_eq!(
        env.get("JOB_COMPLETION_COUNT").map(String::as_str),
        Some(completions.to_string().as_str()),
        "the shard count is the Job's completions"
    );
    let config_path = Path::new(flag_value(&args, "--config"));
    let volume = pod["volumes"]
        .as_sequence()
        .expect("volumes")
        .iter()
        .find(|v| !v["configMap"].is_null())
        .expect("a ConfigMap volume");
    let config_map = named("ConfigMap", text(&volume["configMap"]["name"], "ConfigMap name"));
    let file_name = config_path.file_name().expect("file").to_str().expect("utf-8");
    let manifest_config = text(&config_map["data"][file_name], "the ConfigMap's config file");
    let checked = config_check(manifest_config, &env);
    assert!(
        checked.status.success(),
        "config check: {}",
        String::from_utf8_lossy(&checked.stderr)
    );
    let config = parse_config(manifest_config, &env);
    let bucket = flag_value(&args, "--bucket");
    let route = config
        .buckets
        .iter()
        .find(|b| b.name == bucket)
        .expect("the bucket's route");
    let fallback = route.fallback.clone().expect("a bucket under lazy migration");
    let old_name = fallback.provider.clone();
    let raw: toml::Table = manifest_config.parse().expect("TOML");
    let old_secret_var = raw["providers"][&old_name]["secret_access_key_env"]
        .as_str()
        .expect("the old provider's secret from the environment");
    let from_secret = container["env"]
        .as_sequence()
        .expect("env")
        .iter()
        .any(|v| v["name"].as_str() == Some(old_secret_var) && !v["valueFrom"]["secretKeyRef"].is_null());
    assert!(from_secret, "the old provider's (read-only) key comes from the Secret");

    // Two local S3 servers stand in for the providers; the old bucket holds awkward keys.
    let (new, old) = (TestUpstream::path_style().await, TestUpstream::path_style().await);
    let new_bucket = route.upstream_bucket.clone().unwrap_or_else(|| bucket.to_string());
    let old_bucket = fallback.bucket.clone().unwrap_or_else(|| bucket.to_string());
    new.create_bucket(&new_bucket);
    old.create_bucket(&old_bucket);
    let keys: Vec<String> = (0..40)
        .map(|i| format!("photos/2024/{i:03}.jpg"))
        .chain(["a", "b+c d", "z/é"].iter().map(|s| (*s).to_string()))
        .collect();
    put_objects(
        &old.direct_client(),
        &old_bucket,
        keys.iter().map(|k| (k.clone(), k.as_bytes().to_vec())),
        8,
    )
    .await;
    let endpoints: BTreeMap<String, String> = [
        (old_name.clone(), old.endpoint()),
        (route.provider.clone(), new.endpoint()),
    ]
    .into();
    let dir = tempfile::tempdir().expect("dir");
    let local_config = dir.path().join(file_name);
    std::fs::write(&local_config, config_against(manifest_config, &endpoints)).expect("config");
    // The providers' secret variables carry the stand-ins' secret.
    let mut local_env = env.clone();
    for provider in raw["providers"].as_table().expect("providers").values() {
        let var = provider["secret_access_key_env"].as_str().expect("secret variable");
        local_env.insert(var.to_string(), UPSTREAM_SECRET.to_string());
    }

    // One process per index, all at once, as the Job runs them: the manifest's arguments with
    // the config file swapped, and only the manifest's environment plus the pod's index.
    let local_args: Vec<String> = args
        .iter()
        .map(|a| {
            if *a == config_path.to_str().expect("utf-8") {
                local_config.to_str().expect("utf-8").to_string()
            } else {
                (*a).to_string()
            }
        })
        .collect();
    let runs = (0..completions).map(|index| {
        let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_s3ferry"));
        command
            .args(&local_args)
            .env_clear()
            .envs(&local_env)
            .env("JOB_COMPLETION_INDEX", index.to_string())
            .kill_on_drop(true);
        async move { command.output().await.expect("run s3ferry migrate") }
    });
    let outputs = tokio::time::timeout(std::time::Duration::from_secs(120), futures::future::join_all(runs))
        .await
        .expect("the shards finish");
    let mut copied = 0;
    for (index, output) in outputs.iter().enumerate() {
        assert!(
            output.status.success(),
            "shard {index}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        let report: Value = serde_norway::from_slice(&output.stdout).expect("a JSON report");
        assert_eq!(report["shard"]["index"].as_u64(), Some(index as u64));
        copied += report["copied_objects"].as_u64().expect("copied_objects");
    }
    assert_eq!(copied, keys.len() as u64, "every object copied once, by one shard");
    for key in &keys {
        assert!(new.has_object(&new_bucket, key).await, "{key} copied");
    }
}
