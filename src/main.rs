//! The `dropcache` command line: parse, set up logging, bind, run until a shutdown signal.

mod cli;

use anyhow::Context;
use clap::Parser;
use cli::args::{Cli, Command, EmulatorArgs};
use dropcache::app::App;
use dropcache::config::Config;
use dropcache::emulator::faults::Faults;
use dropcache::emulator::{AccountSpec, Emulator, EmulatorConfig};
use dropcache::telemetry::LogControl;
use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;

fn main() -> anyhow::Result<()> {
    // The access log's lines are gathered per worker and written when it runs out of work
    // (`telemetry::flush_parked`): one write per batch of requests, not one per request.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .on_thread_park(dropcache::telemetry::flush_parked)
        .on_thread_stop(dropcache::telemetry::flush_access)
        .build()
        .context("cannot start the runtime")?;
    let outcome = runtime.block_on(run());
    // Stops the workers (each writes its gathered lines as it stops).
    drop(runtime);
    outcome
}

async fn run() -> anyhow::Result<()> {
    let cli = Cli::parse();
    if !matches!(cli.command, Command::Serve { .. } | Command::Demo { .. }) {
        dropcache::telemetry::init();
    }
    match cli.command {
        Command::Serve { config } => run_serve(&config).await,
        Command::Demo { listen, dir } => run_demo(&listen, dir).await,
        Command::Emulator(args) => run_emulator(*args).await,
        Command::Accounts(args) => cli::accounts::run(args).await,
        Command::CheckConfig { config } => check_config(&config),
    }
}

fn check_config(path: &std::path::Path) -> anyhow::Result<()> {
    let env = |k: &str| std::env::var(k).ok();
    match dropcache::config::Config::load(path, &env) {
        Ok(c) => {
            println!(
                "{}: ok ({} account(s), listen {})",
                path.display(),
                c.accounts.len(),
                c.listen
            );
            Ok(())
        }
        Err(e) => {
            eprintln!("{}: {e}", path.display());
            std::process::exit(1);
        }
    }
}

pub(crate) fn load_config(path: &std::path::Path) -> Config {
    let env = |k: &str| std::env::var(k).ok();
    Config::load(path, &env).unwrap_or_else(|e| {
        eprintln!("{}: {e}", path.display());
        std::process::exit(1);
    })
}

async fn run_serve(path: &std::path::Path) -> anyhow::Result<()> {
    // Before anything slow: a SIGHUP's default action would end the process.
    let hangups = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
        .context("cannot handle SIGHUP")?;
    let config = load_config(path);
    let log = dropcache::telemetry::init_with(&config.log);
    serve_proxy(config, log, Some((path.to_owned(), hangups)), |_| Ok(())).await
}

/// Builds the app, binds, prints `listening on http://IP:PORT` (then `banner`), serves until
/// a shutdown signal. Each of `hangups` re-reads the config file and applies its `log.level`.
async fn serve_proxy(
    config: Config,
    log: Option<LogControl>,
    hangups: Option<(PathBuf, tokio::signal::unix::Signal)>,
    banner: impl FnOnce(SocketAddr) -> std::io::Result<()>,
) -> anyhow::Result<()> {
    let listen = config.listen;
    let metrics_listen = config.metrics_listen;
    let app = App::build(config).await?;
    if let Some(log) = log {
        let _ = app.log.set(log);
    }
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("cannot listen on {listen}"))?;
    let metrics = match metrics_listen {
        Some(addr) => Some(
            tokio::net::TcpListener::bind(addr)
                .await
                .with_context(|| format!("cannot listen on {addr} (metrics.listen)"))?,
        ),
        None => None,
    };
    let addr = listener.local_addr()?;
    let mut out = std::io::stdout().lock();
    writeln!(out, "listening on http://{addr}")?;
    if let Some(m) = &metrics {
        writeln!(out, "metrics on http://{}/metrics", m.local_addr()?)?;
    }
    out.flush()?;
    drop(out);
    banner(addr)?;
    tracing::info!(%addr, accounts = app.accounts.len(), store = app.store.kind(), "proxy started");
    if let Some((path, hangups)) = hangups {
        tokio::spawn(reload_on_hangup(app.clone(), path, hangups));
    }
    dropcache::server::run(listener, metrics, app, shutdown_signal()).await;
    tracing::info!("stopped");
    Ok(())
}

/// On each SIGHUP: re-reads the config file and applies `log.level` (the settings that can
/// change while running); a file that no longer validates changes nothing.
async fn reload_on_hangup(
    app: std::sync::Arc<App>,
    path: PathBuf,
    mut hangups: tokio::signal::unix::Signal,
) {
    while hangups.recv().await.is_some() {
        let env = |k: &str| std::env::var(k).ok();
        match Config::load(&path, &env) {
            Err(e) => tracing::error!(error = %e, file = %path.display(),
                "SIGHUP: the config file is not valid; nothing changed"),
            Ok(new) => match app.log.get() {
                Some(log) => match log.set_level(&new.log.level) {
                    Ok(()) => tracing::warn!(level = %new.log.level,
                        "SIGHUP: log.level applied; other settings take effect on restart"),
                    Err(e) => tracing::error!(error = %e, "SIGHUP: cannot apply log.level"),
                },
                None => tracing::warn!("SIGHUP: logging is not under the proxy's control"),
            },
        }
    }
}

async fn run_demo(listen: &str, dir: Option<PathBuf>) -> anyhow::Result<()> {
    let dir = dir.unwrap_or_else(|| std::env::temp_dir().join("dropcache-demo"));
    // Said plainly: a second run reuses the first one's store and body cache.
    let reused = dir.join("store").exists();
    let log = dropcache::telemetry::init_with(&dropcache::config::LogConfig::default());
    let (emulator, config) = dropcache::demo::start(&dir, listen).await?;
    let sample = dir.join("dropbox");
    serve_proxy(config, log, None, |addr| {
        let a = dropcache::demo::ALIAS;
        let mut out = std::io::stdout().lock();
        writeln!(
            out,
            "dropcache demo: the sample in {} is a local Dropbox (emulator at {}),",
            sample.display(),
            emulator.base_url
        )?;
        let site = dropcache::demo::SITE;
        writeln!(
            out,
            "published as the site /{site}/ and as the account /{a}/ (its /site folder). Open:"
        )?;
        for (path, what) in [
            (
                "",
                "the site: index.html, clean URLs, _redirects, the 404 page",
            ),
            ("about", "about.html by its clean URL"),
            (
                "gallery",
                "the photos folder as a gallery (its ?album view)",
            ),
        ] {
            writeln!(out, "  http://{addr}/{site}/{path:<17} {what}")?;
        }
        for (path, what) in [
            ("index.html", "the sample site"),
            ("photos/", "a folder (HTML in a browser, JSON for curl)"),
            (
                "photos/sunset.jpg",
                "an image (try curl -I, Range, If-None-Match)",
            ),
        ] {
            writeln!(out, "  http://{addr}/{a}/{path:<18} {what}")?;
        }
        if reused {
            writeln!(
                out,
                "It reuses {} from an earlier run (the sample rewritten; the store and the body \
                 cache kept): --dir DIR for a fresh one.",
                dir.display()
            )?;
        }
        writeln!(out, "Ctrl-C stops it.")?;
        out.flush()
    })
    .await
}

async fn run_emulator(args: EmulatorArgs) -> anyhow::Result<()> {
    let default = AccountSpec {
        name: args.name,
        token: args.token,
        root: args.root,
    };
    if default.root.is_none() && !args.memory {
        tracing::info!("no --root given: the default account's files are kept in memory");
    }
    let config = EmulatorConfig {
        accounts: std::iter::once(default).chain(args.accounts).collect(),
        app_key: args.app_key,
        app_secret: args.app_secret,
        token_lifetime: args.token_lifetime,
        webhook: args.webhook,
        admin: args.admin,
        faults: Faults {
            latency_ms: args.latency.as_millis() as u64,
            rules: args.faults,
            longpoll_backoff: args.longpoll_backoff,
        },
        longpoll_jitter: args.longpoll_jitter,
    };
    let tls = match (&args.tls_cert, &args.tls_key) {
        (Some(cert), Some(key)) => Some(dropcache::server::tls::acceptor(cert, key)?),
        _ => None,
    };
    let scheme = if tls.is_some() { "https" } else { "http" };
    let emulator = Emulator::new(config)?;
    let listener = tokio::net::TcpListener::bind(&args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    let addr = listener.local_addr()?;
    let mut out = std::io::stdout().lock();
    writeln!(out, "listening on {scheme}://{addr}")?;
    out.flush()?;
    drop(out);
    emulator.serve(listener, tls, shutdown_signal()).await;
    Ok(())
}

/// Resolves on Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
    tracing::info!("shutting down");
}
