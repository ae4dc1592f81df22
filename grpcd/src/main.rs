//! grpcd: the HFT Arbitrage Lab core served over gRPC (tonic), with grpc.health.v1 and (optional)
//! reflection. Run `grpcd --help` for the flags.
//!
//! - `--port 0` binds any free port; the bound address is printed on stdout as one JSON line:
//!   {"event":"listening","host":"127.0.0.1","port":12345,"pid":678,"tls":false,"auth":false}
//! - Loopback by default. Any other address requires TLS (`--tls-cert`/`--tls-key`, rustls) and a
//!   bearer token (`--token-file`), unless `--insecure` (a loud warning) is given.
//! - Every call passes through `guard::GuardLayer`: logging + timing, token check, concurrency
//!   limit, load shedding and a memory semaphore weighted by request size.
//! - `--managed` (used by the desktop app): exit when the parent dies (PR_SET_PDEATHSIG + a
//!   getppid() check) or when stdin reaches EOF.
//! - Logs are structured JSON lines on stderr. SIGTERM / Ctrl-C shut down gracefully.

mod arena;
mod awake;
mod codec;
mod conn;
mod convert;
mod guard;
mod hmm_service;
mod info;
mod limits;
mod log;
mod mapcache;
mod service;
// issue 17: the pairs workflow's service
mod pairs_service;
mod shm;
mod spare_cpu;
// issue 15: the streaming RPC loops, written once
mod streams;

#[global_allocator]
static ALLOC: arena::ArenaAlloc = arena::ArenaAlloc;

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
    tls_cert: Option<String>,
    tls_key: Option<String>,
    token_file: Option<String>,
    insecure: bool,
    reflection: bool,
    max_concurrent: Option<usize>,
    max_queue: Option<usize>,
    max_streams: Option<usize>,
    memory_budget_mb: Option<u64>,
    no_shm: bool,
    shm_dir: Option<String>,
    io_threads: usize,
    spin_us: u64,
}

const USAGE: &str = "usage: grpcd [--host HOST] [--port PORT] [--max-message-mb N] [--memory-limit SIZE] [--managed]
             [--tls-cert PEM --tls-key PEM] [--token-file FILE] [--insecure] [--reflection]
             [--max-concurrent N] [--max-queue N] [--max-streams N] [--memory-budget-mb N]
             [--no-shm] [--shm-dir DIR] [--io-threads N] [--spin-us N] [--log-level LEVEL]

  --host HOST            address to listen on (default 127.0.0.1, loopback only). Any other address
                         requires --tls-cert/--tls-key and --token-file, unless --insecure.
  --port PORT            0 (default) picks a free port; the bound port is printed on stdout as JSON
  --max-message-mb N     gRPC message limit, both directions (default 512, 1..2047)
  --tls-cert, --tls-key  PEM certificate chain and private key: serve TLS (rustls)
  --token-file FILE      require 'authorization: Bearer <token>' on every call but health; the file
                         holds the token (at least 16 characters; surrounding whitespace ignored)
  --insecure             allow a non-loopback address without TLS and/or token (prints a warning)
  --reflection           serve gRPC reflection (off by default; requires the token when one is set)
  --max-concurrent N     calls computing at once (default 2 per CPU, at least 4)
  --max-queue N          calls waiting for a slot or memory; beyond it calls are shed with
                         UNAVAILABLE (default 64)
  --max-streams N        live StreamMeanReversion streams open at once (default 64)
  --memory-budget-mb N   memory reserved for requests in flight, 4x each request's size
                         (default a quarter of the physical memory)
  --memory-limit SIZE    the core's memory budget for the computations in flight, estimated per
                         request before anything is allocated (8G, 512M, 50%, bytes; default
                         HFT_LAB_MEMORY_LIMIT, else half the physical memory); beyond it:
                         RESOURCE_EXHAUSTED naming the need
  --managed              exit when the parent process dies or closes our stdin (desktop app)
  --no-shm               do not offer shared-memory arrays to clients on this host
  --shm-dir DIR          private directory (0700) for shared-memory arrays (default
                         /dev/shm/hftlab-<uid>); only offered on loopback without TLS
  --io-threads N         threads serving the connections (HTTP/2, small calls; default 1: on a
                         desktop grpcd serves one app; computations of large inputs and concurrent
                         calls run on the blocking pool). More for many busy remote clients
  --spin-us N            after the last call in progress ends, keep polling the sockets for N µs
                         before sleeping (default 300; 0: off; only with one I/O thread and 2+ CPUs)
  --log-level LEVEL      lowest level logged on stderr: debug (default: a line per call), info,
                         warn or error";

fn parse_count(name: &str, v: &str, max: u64) -> Result<u64, String> {
    v.parse::<u64>()
        .ok()
        .filter(|n| (1..=max).contains(n))
        .ok_or_else(|| format!("{name} must be a number from 1 to {max}, got '{v}'"))
}

fn parse_args() -> Result<Args, String> {
    let mut a = Args {
        host: "127.0.0.1".into(),
        port: 0,
        max_message_bytes: 512 << 20,
        managed: false,
        tls_cert: None,
        tls_key: None,
        token_file: None,
        insecure: false,
        reflection: false,
        max_concurrent: None,
        max_queue: None,
        max_streams: None,
        memory_budget_mb: None,
        no_shm: false,
        shm_dir: None,
        io_threads: 1,
        spin_us: 300,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut value = |name: &str| {
            it.next()
                .ok_or_else(|| format!("{name} needs a value\n{USAGE}"))
        };
        match arg.as_str() {
            "--tls-cert" => a.tls_cert = Some(value("--tls-cert")?),
            "--tls-key" => a.tls_key = Some(value("--tls-key")?),
            "--token-file" => a.token_file = Some(value("--token-file")?),
            "--insecure" => a.insecure = true,
            "--reflection" => a.reflection = true,
            "--max-concurrent" => {
                a.max_concurrent = Some(parse_count(
                    "--max-concurrent",
                    &value("--max-concurrent")?,
                    4096,
                )? as usize)
            }
            "--max-queue" => {
                let v = value("--max-queue")?;
                a.max_queue = Some(
                    v.parse::<usize>()
                        .ok()
                        .filter(|n| *n <= 1 << 20)
                        .ok_or_else(|| {
                            format!(
                                "--max-queue must be a number from 0 to {}, got '{v}'",
                                1 << 20
                            )
                        })?,
                );
            }
            "--max-streams" => {
                a.max_streams =
                    Some(parse_count("--max-streams", &value("--max-streams")?, 1 << 16)? as usize)
            }
            "--memory-budget-mb" => {
                a.memory_budget_mb = Some(parse_count(
                    "--memory-budget-mb",
                    &value("--memory-budget-mb")?,
                    1 << 30,
                )?)
            }
            "--host" => a.host = value("--host")?,
            "--port" => {
                let v = value("--port")?;
                a.port = v
                    .parse()
                    .map_err(|_| format!("--port must be a number from 0 to 65535, got '{v}'"))?;
            }
            "--max-message-mb" => {
                let v = value("--max-message-mb")?;
                let mb: usize = v
                    .parse()
                    .ok()
                    .filter(|m| (1..=2047).contains(m))
                    .ok_or_else(|| {
                        format!("--max-message-mb must be a number from 1 to 2047, got '{v}'")
                    })?;
                a.max_message_bytes = mb << 20;
            }
            "--managed" => a.managed = true,
            "--no-shm" => a.no_shm = true,
            "--io-threads" => {
                a.io_threads = parse_count("--io-threads", &value("--io-threads")?, 256)? as usize
            }
            "--spin-us" => {
                let v = value("--spin-us")?;
                a.spin_us = v
                    .parse::<u64>()
                    .ok()
                    .filter(|n| *n <= 100_000)
                    .ok_or_else(|| {
                        format!("--spin-us must be a number from 0 to 100000, got '{v}'")
                    })?;
            }
            "--log-level" => log::set_level(&value("--log-level")?)?,
            "--shm-dir" => a.shm_dir = Some(value("--shm-dir")?),
            "--memory-limit" => limits::from_flag(&value("--memory-limit")?)?, // SIZE: 8G, 512M, 50%
            "-h" | "--help" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            "--version" => {
                println!(
                    "grpcd {} (rustcore {})",
                    env!("CARGO_PKG_VERSION"),
                    rustcore::VERSION
                );
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
/// Each is wrapped in conn::Conn (a unary response in one write, issue 16).
fn incoming(
    listener: tokio::net::TcpListener,
) -> impl tokio_stream::Stream<Item = std::io::Result<conn::Conn>> {
    use tokio_stream::StreamExt;
    tokio_stream::wrappers::TcpListenerStream::new(listener).map(|conn| {
        conn.map(|c| {
            let _ = c.set_nodelay(true);
            conn::Conn::new(c)
        })
    })
}

/// The graceful-shutdown trigger. The SIGTERM and SIGINT handlers are installed here, when it is
/// called (before the "listening" line), not when the server first polls the future: a SIGTERM
/// sent right after the app saw the port and a health check would otherwise meet the default
/// action and kill the process (a fresh-clone CI run saw exit status -15).
fn shutdown_signal() -> impl std::future::Future<Output = ()> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).expect("install SIGTERM handler");
    let mut int = signal(SignalKind::interrupt()).expect("install SIGINT handler");
    async move {
        tokio::select! {
            _ = term.recv() => log::info("SIGTERM received, shutting down", &[]),
            _ = int.recv() => log::info("interrupt received, shutting down", &[]),
        }
    }
}

// ---- issue 16: small calls (allocator settings) ----

/// glibc malloc serves blocks above its mmap threshold (128 KiB at first) with fresh mappings and
/// gives the heap's top back to the kernel above its trim threshold: every call then page-faults
/// and zeroes its request buffers anew (a 50-asset portfolio's 200 KB of prices: ~15% of grpcd's
/// time in page faults). Buffers up to 8 MiB are reused from the heap instead, and up to 64 MiB of
/// free heap is kept; bulk arrays above 8 MiB still get their own mappings, returned at once.
fn tune_malloc() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 8 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 64 << 20);
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
    tune_malloc();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.io_threads)
        .enable_all()
        .build()
        .expect("tokio runtime");
    if let Err(e) = rt.block_on(serve(args)) {
        log::error(&e, &[]);
        eprintln!("grpcd: {e}");
        std::process::exit(1);
    }
}

const MAX_STREAMS_PER_CONNECTION: u32 = 128;
const STREAM_WINDOW: u32 = 1 << 20;
const MAX_FRAME_SIZE: u32 = 1 << 20;

fn is_loopback(ip: &IpAddr) -> bool {
    ip.is_loopback()
}

/// The security settings, checked before anything listens: TLS identity, token, and the rule that
/// a non-loopback address needs both unless --insecure.
struct Security {
    tls: Option<tonic::transport::ServerTlsConfig>,
    token: Option<Vec<u8>>,
}

fn security(args: &Args, ip: &IpAddr) -> Result<Security, String> {
    let tls = match (&args.tls_cert, &args.tls_key) {
        (None, None) => None,
        (Some(_), None) | (None, Some(_)) => {
            return Err("--tls-cert and --tls-key go together: give both PEM files".into());
        }
        (Some(c), Some(k)) => {
            let cert = std::fs::read(c).map_err(|e| format!("cannot read --tls-cert {c}: {e}"))?;
            let key = std::fs::read(k).map_err(|e| format!("cannot read --tls-key {k}: {e}"))?;
            if !cert
                .windows(27)
                .any(|w| w == b"-----BEGIN CERTIFICATE-----")
            {
                return Err(format!(
                    "--tls-cert {c} is not a PEM certificate (no BEGIN CERTIFICATE block)"
                ));
            }
            if !key.windows(11).any(|w| w == b"PRIVATE KEY") {
                return Err(format!(
                    "--tls-key {k} is not a PEM private key (no PRIVATE KEY block)"
                ));
            }
            let identity = tonic::transport::Identity::from_pem(cert, key);
            Some(
                tonic::transport::ServerTlsConfig::new()
                    .identity(identity)
                    .timeout(Duration::from_secs(10)),
            )
        }
    };
    let token = match &args.token_file {
        None => None,
        Some(f) => {
            let raw = std::fs::read(f).map_err(|e| format!("cannot read --token-file {f}: {e}"))?;
            let t = String::from_utf8(raw)
                .map_err(|_| format!("--token-file {f} is not UTF-8 text"))?;
            let t = t.trim();
            if t.len() < 16 || t.chars().any(|c| c.is_whitespace() || c.is_control()) {
                return Err(format!(
                    "--token-file {f}: the token must be one word of at least 16 characters (got {} characters)",
                    t.chars().count()
                ));
            }
            Some(t.as_bytes().to_vec())
        }
    };
    if !is_loopback(ip) {
        let mut missing = Vec::new();
        if tls.is_none() {
            missing.push("TLS (--tls-cert and --tls-key)");
        }
        if token.is_none() {
            missing.push("a bearer token (--token-file)");
        }
        if !missing.is_empty() {
            if !args.insecure {
                return Err(format!(
                    "refusing to listen on {} without {}: anyone who can reach this address could use the \
                     server. Add them, bind 127.0.0.1, or pass --insecure to accept the risk",
                    args.host,
                    missing.join(" and ")
                ));
            }
            let warning = format!(
                "INSECURE: listening on {} without {} (--insecure); traffic and access are unprotected",
                args.host,
                missing.join(" and ")
            );
            eprintln!("grpcd: WARNING: {warning}");
            log::warn(&warning, &[]);
        }
    }
    Ok(Security { tls, token })
}

async fn serve(args: Args) -> Result<(), String> {
    // (with one CPU spare_cpu() is never true: the task then never polls)
    if args.spin_us > 0 && args.io_threads == 1 {
        spare_cpu::spare_cpu(); // opens /proc/loadavg now (kept open), not during the first call
        tokio::spawn(awake::run(Duration::from_micros(args.spin_us)));
    }
    let ip: IpAddr = if args.host == "localhost" {
        IpAddr::from([127, 0, 0, 1])
    } else {
        args.host
            .parse()
            .map_err(|_| format!("--host must be an IP address, got '{}'", args.host))?
    };
    let sec = security(&args, &ip)?;
    // shared-memory arrays: same host only, so loopback without TLS (see shm.rs)
    shm::init(
        is_loopback(&ip) && sec.tls.is_none() && !args.no_shm,
        args.shm_dir.as_deref(),
    );
    let mut limits = guard::Limits::defaults(args.max_message_bytes);
    if let Some(n) = args.max_concurrent {
        limits.max_concurrent = n;
    }
    if let Some(n) = args.max_queue {
        limits.max_queue = n;
    }
    if let Some(n) = args.max_streams {
        limits.max_streams = n;
    }
    if let Some(mb) = args.memory_budget_mb {
        limits.memory_budget_bytes = mb << 20;
    }
    if shm::dir().is_some() {
        // segments of clients that died before their call was opened (also swept per shm call)
        tokio::spawn(async {
            loop {
                tokio::time::sleep(Duration::from_secs(30)).await;
                let _ = tokio::task::spawn_blocking(shm::sweep).await;
            }
        });
    }
    let listener = tokio::net::TcpListener::bind(SocketAddr::new(ip, args.port))
        .await
        .map_err(|e| format!("cannot listen on {}:{}: {e}", args.host, args.port))?;
    let local = listener.local_addr().map_err(|e| e.to_string())?;

    let (health_reporter, health_service) = tonic_health::server::health_reporter();
    health_reporter
        .set_serving::<HftLabServer<service::Service>>()
        .await;
    health_reporter
        .set_serving::<pb::hft_lab_pairs_server::HftLabPairsServer<pairs_service::PairsService>>()
        .await;
    let reflection = if args.reflection {
        Some(
            tonic_reflection::server::Builder::configure()
                .register_encoded_file_descriptor_set(pb::FILE_DESCRIPTOR_SET)
                .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
                .build_v1()
                .map_err(|e| format!("reflection: {e}"))?,
        )
    } else {
        None
    };
    let svc = HftLabServer::new(service::Service::new(args.max_message_bytes))
        .max_decoding_message_size(args.max_message_bytes)
        .max_encoding_message_size(args.max_message_bytes);

    let tls_on = sec.tls.is_some();
    let auth_on = sec.token.is_some();
    // HTTP/2 pings find dead peers (a client that vanished without closing its connection).
    // Flow control: a call waiting in the guard's queue does not read its body, so its stream
    // keeps up to one stream window of data unread. With hyper's defaults (1 MiB for the stream
    // AND for the whole connection) one queued call would starve every other call on the same
    // connection (grpcio shares one connection per target): a deadlock. The connection window is
    // therefore larger than all stream windows together.
    let mut builder = tonic::transport::Server::builder()
        .http2_keepalive_interval(Some(Duration::from_secs(30)))
        .http2_keepalive_timeout(Some(Duration::from_secs(10)))
        .max_concurrent_streams(Some(MAX_STREAMS_PER_CONNECTION))
        .initial_stream_window_size(Some(STREAM_WINDOW))
        .initial_connection_window_size(Some(STREAM_WINDOW * (MAX_STREAMS_PER_CONNECTION + 1)))
        // issue 16 (small calls): HTTP/2 frames of up to 1 MiB instead of 16 KiB: a 50-asset
        // portfolio's 200 KB of prices arrive in one frame (two or three reads) rather than in 13
        // frames read 8 KiB at a time (24 reads), which cost ~10% of the call's server time
        .max_frame_size(Some(MAX_FRAME_SIZE));
    if let Some(tls) = sec.tls {
        builder = builder
            .tls_config(tls)
            .map_err(|e| format!("TLS configuration: {e}"))?;
    }
    let router = builder
        .layer(guard::GuardLayer::new(limits.clone(), sec.token))
        .add_service(health_service)
        .add_optional_service(reflection)
        .add_service(svc)
        .add_service(
            pb::hft_lab_pairs_server::HftLabPairsServer::new(pairs_service::PairsService)
                .max_decoding_message_size(args.max_message_bytes)
                .max_encoding_message_size(args.max_message_bytes),
        );

    let shutdown = shutdown_signal();
    // The one machine-readable line the desktop app waits for.
    {
        let mut out = std::io::stdout().lock();
        let _ = writeln!(
            out,
            "{{\"event\":\"listening\",\"host\":\"{}\",\"port\":{},\"pid\":{},\"tls\":{},\"auth\":{}}}",
            local.ip(),
            local.port(),
            std::process::id(),
            tls_on,
            auth_on
        );
        let _ = out.flush();
    }
    log::info(
        "serving",
        &[
            ("addr", &local.to_string()),
            ("max_message_bytes", &args.max_message_bytes.to_string()),
            ("tls", &tls_on.to_string()),
            ("auth", &auth_on.to_string()),
            ("reflection", &args.reflection.to_string()),
            ("max_concurrent", &limits.max_concurrent.to_string()),
            ("max_queue", &limits.max_queue.to_string()),
            ("max_streams", &limits.max_streams.to_string()),
            (
                "memory_budget_mb",
                &(limits.memory_budget_bytes >> 20).to_string(),
            ),
        ],
    );

    router
        .serve_with_incoming_shutdown(incoming(listener), shutdown)
        .await
        .map_err(|e| format!("server error: {e}"))?;
    log::info("stopped", &[]);
    Ok(())
}
