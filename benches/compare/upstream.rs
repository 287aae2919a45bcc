//! The comparison harness's upstream (benches/compare.sh): s3s-fs serving a directory on
//! 127.0.0.1 with one key pair, its listener setting TCP_NODELAY.
//!
//! The `s3s-fs` binary leaves Nagle's algorithm on, so every small answer waits about 40 ms for
//! a delayed ACK and hides whatever a proxy in front of it costs per request. This is the same
//! s3s-fs library, served by `s3ferry::local::serve_s3_service` (the loop behind s3ferry's own
//! `kind = "local"` providers), without their S3 fix-ups: the upstream every path shares.
//!
//!     s3ferry-bench-upstream --root DIR --listen 127.0.0.1:PORT --key KEY --secret SECRET --bucket NAME

use std::path::PathBuf;

fn main() {
    let mut root = None;
    let mut listen = String::from("127.0.0.1:0");
    let mut key = String::from("bench");
    let mut secret = String::from("bench-secret");
    let mut buckets = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || args.next().unwrap_or_else(|| usage(&format!("{arg} needs a value")));
        match arg.as_str() {
            "--root" => root = Some(PathBuf::from(value())),
            "--listen" => listen = value(),
            "--key" => key = value(),
            "--secret" => secret = value(),
            "--bucket" => buckets.push(value()),
            _ => usage(&format!("unknown argument {arg}")),
        }
    }
    let root = root.unwrap_or_else(|| usage("--root is required"));
    for bucket in &buckets {
        std::fs::create_dir_all(root.join(bucket))
            .unwrap_or_else(|e| usage(&format!("cannot create bucket {bucket}: {e}")));
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap_or_else(|e| usage(&format!("runtime: {e}")));
    runtime.block_on(async move {
        let fs = s3s_fs::FileSystem::new(&root)
            .unwrap_or_else(|e| usage(&format!("cannot serve {}: {e:?}", root.display())));
        let mut builder = s3s::service::S3ServiceBuilder::new(fs);
        builder.set_auth(s3s::auth::SimpleAuth::from_single(key, secret));
        let listener = tokio::net::TcpListener::bind(&listen)
            .await
            .unwrap_or_else(|e| usage(&format!("cannot listen on {listen}: {e}")));
        if let Ok(addr) = listener.local_addr() {
            println!("listening on {addr}");
        }
        s3ferry::local::serve_s3_service(listener, builder.build()).await;
    });
}

fn usage(problem: &str) -> ! {
    eprintln!("s3ferry-bench-upstream: {problem}");
    eprintln!(
        "usage: s3ferry-bench-upstream --root DIR [--listen 127.0.0.1:PORT] [--key K] [--secret S] [--bucket NAME]..."
    );
    std::process::exit(2);
}
