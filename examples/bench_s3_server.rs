//! A plain S3 server for benchmarks: s3s-fs serving a directory on 127.0.0.1 with TCP_NODELAY,
//! the same server a `kind = "local"` provider runs in-process, but on its own port and without
//! s3ferry in front (which keeps `.s3ferry/` to itself, so it cannot be a migration's new
//! provider). `benches/migrate_vs_rclone.sh` runs two of these as the upstreams both tools copy
//! between.
//!
//! Usage: `bench_s3_server ROOT PORT ACCESS_KEY SECRET_KEY` (a bucket is a directory of ROOT).

use s3s::auth::SimpleAuth;
use s3s::service::S3ServiceBuilder;

#[tokio::main]
async fn main() -> Result<(), String> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [root, port, key, secret] = args.as_slice() else {
        return Err("usage: bench_s3_server ROOT PORT ACCESS_KEY SECRET_KEY".into());
    };
    let port: u16 = port.parse().map_err(|e| format!("port '{port}': {e}"))?;
    std::fs::create_dir_all(root).map_err(|e| format!("{root}: {e}"))?;
    let fs = s3s_fs::FileSystem::new(root).map_err(|e| format!("{root}: {e:?}"))?;
    let mut builder = S3ServiceBuilder::new(fs);
    builder.set_auth(SimpleAuth::from_single(key.clone(), secret.clone()));
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .map_err(|e| format!("127.0.0.1:{port}: {e}"))?;
    println!("listening on 127.0.0.1:{port}");
    s3ferry::local::serve_s3_service(listener, builder.build()).await;
    Ok(())
}
