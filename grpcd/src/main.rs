//! grpcd: the HFT Arbitrage Lab core served over gRPC (tonic), with grpc.health.v1 and reflection.
//!
//! Usage: grpcd [--host 127.0.0.1] [--port 0] [--max-message-mb 512] [--managed]
//! - `--port 0` binds any free port; the bound address is printed on stdout as one JSON line:
//!   {"event":"listening","host":"127.0.0.1","port":12345,"pid":678}
//! - `--managed` (used by the desktop app): exit when the parent dies (PR_SET_PDEATHSIG + a
//!   getppid() check) or when stdin reaches EOF.
//! - Logs are structured JSON lines on stderr. SIGTERM / Ctrl-C shut down gracefully.

mod codec;
mod convert;
mod limits;
mod service;
mod log;

pub mod pb {
    tonic::include_proto!("hftlab.v1");
    pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("hftlab_descriptor");
}

use std::io::Write;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use pb::hft_lab_server::HftLabServer;

struct Args {
    host: String,
    port: u16,
    max_message_bytes: usize,
    managed: bool,
}

const USAGE: &str = "usage: grpcd [--host HOST] [--port PORT] [--max-message-mb N] [--memory-limit SIZE] [--managed]";

fn parse_args() -> Result<Args, String> {
    let mut a = Args { host: "127.0.0.1".into(), port: 0, max_message_bytes: 512 << 20, managed: false };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut value = |name: &str| it.next().ok_or_else(|| format!("{name} needs a value\n{USAGE}"));
        match arg.as_str() {
            "--host" => a.host = value("--host")?,
            "--port" => {
                let v = value("--port")?;
                a.port = v.parse().map_err(|_| format!("--port must be a number from 0 to 65535, got '{v}'"))?;
            }
            "--max-message-mb" => {
                let v = value("--max-message-mb")?;
                let mb: usize = v
                    .parse()
                    .ok()
                    .filter(|m| (1..=2047).contains(m))
                    .ok_or_else(|| format!("--max-message-mb must be a number from 1 to 2047, got '{v}'"))?;
                a.max_message_bytes = mb << 20;
            }
            "--managed" => a.managed = true,
            "--memory-limit" => limits::from_flag(&value("--memory-limit")?)?, // SIZE: 8G, 512M, 50%
            "-h" | "--help" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            "--version" => {
                println!("grpcd {} (rustcore {})", env!("CARGO_PKG_VERSION"), rustcore::VERSION);
                std::process::exit(0);
            }
            other => return Err(format!("unknown argument '{other}'\n{USAGE}")),
        }
    }
    Ok(a)
}

/// Exit when the parent process dies: PDEATHSIG for the common case, plus a getppid() poll and a
/// stdin-EOF watch (the parent holds our stdin pipe; its death closes it).
fn watch_parent() {
    let parent = unsafe { libc::getppid() };
    unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM) };
    if unsafe { libc::getppid() } != parent || parent == 1 {
        log::info("parent already gone, exiting", &[]);
        std::process::exit(0);
    }
    std::thread::spawn(move || loop {
        std::thread::sleep(Duration::from_millis(500));
        if unsafe { libc::getppid() } != parent {
            log::info("parent process died, exiting", &[]);
            std::process::exit(0);
        }
    });
    std::thread::spawn(|| {
        let mut buf = [0u8; 256];
        loop {
            match std::io::Read::read(&mut std::io::stdin(), &mut buf) {
                Ok(0) | Err(_) => {
                    log::info("stdin closed by the parent, exiting", &[]);
                    std::process::exit(0);
                }
                Ok(_) => {}
            }
        }
    });
}

/// Accepted connections with TCP_NODELAY: without it, small responses wait for the peer's delayed
/// ACK (~40 ms per call on Linux). Builder::tcp_nodelay only applies to tonic's own listener.
fn incoming(listener: tokio::net::TcpListener) -> impl tokio_stream::Stream<Item = std::io::Result<tokio::net::TcpStream>> {
    use tokio_stream::StreamExt;
    tokio_stream::wrappers::TcpListenerStream::new(listener).map(|conn| {
        if let Ok(c) = &conn {
            let _ = c.set_nodelay(true);
        }
        conn
    })
}

async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).expect("install SIGTERM handler");
    tokio::select! {
        _ = term.recv() => log::info("SIGTERM received, shutting down", &[]),
        _ = tokio::signal::ctrl_c() => log::info("interrupt received, shutting down", &[]),
    }
}

fn main() {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("grpcd: {e}");
            std::process::exit(2);
        }
    };
    if args.managed {
        watch_parent();
    }
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("tokio runtime");
    if let Err(e) = rt.block_on(serve(args)) {
        log::error(&e, &[]);
        eprintln!("grpcd: {e}");
        std::process::exit(1);
    }
}

async fn serve(args: Args) -> Result<(), String> {
    let ip: IpAddr = if args.host == "localhost" {
        IpAddr::from([127, 0, 0, 1])
    } else {
        args.host.parse().map_err(|_| format!("--host must be an IP address, got '{}'", args.host))?
    };
    let listener = tokio::net::TcpListener::bind(SocketAddr::new(ip, args.port))
        .await
        .map_err(|e| format!("cannot listen on {}:{}: {e}", args.host, args.port))?;
    let local = listener.local_addr().map_err(|e| e.to_string())?;

    let (health_reporter, health_service) = tonic_health::server::health_reporter();
    health_reporter.set_serving::<HftLabServer<service::Service>>().await;
    let reflection = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(pb::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1()
        .map_err(|e| format!("reflection: {e}"))?;
    let svc = HftLabServer::new(service::Service::new(args.max_message_bytes))
        .max_decoding_message_size(args.max_message_bytes)
        .max_encoding_message_size(args.max_message_bytes);

    // The one machine-readable line the desktop app waits for.
    {
        let mut out = std::io::stdout().lock();
        let _ = writeln!(
            out,
            "{{\"event\":\"listening\",\"host\":\"{}\",\"port\":{},\"pid\":{}}}",
            local.ip(),
            local.port(),
            std::process::id()
        );
        let _ = out.flush();
    }
    log::info(
        "serving",
        &[("addr", &local.to_string()), ("max_message_bytes", &args.max_message_bytes.to_string())],
    );

    tonic::transport::Server::builder()
        .add_service(health_service)
        .add_service(reflection)
        .add_service(svc)
        .serve_with_incoming_shutdown(incoming(listener), shutdown_signal())
        .await
        .map_err(|e| format!("server error: {e}"))?;
    log::info("stopped", &[]);
    Ok(())
}
