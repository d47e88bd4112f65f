//! The `dropcache` command line: parse, set up logging, bind, run until a shutdown signal.

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use dropcache::app::App;
use dropcache::config::Config;
use dropcache::emulator::faults::{FaultRule, Faults};
use dropcache::emulator::{AccountSpec, Emulator, EmulatorConfig};
use dropcache::telemetry::LogControl;
use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Parser)]
#[command(
    name = "dropcache",
    version,
    about = "A caching HTTP reverse proxy in front of Dropbox"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the proxy with a config file (see config/dropcache.example.toml).
    Serve {
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
    },
    /// Try it with nothing to set up: a bundled sample site in a local Dropbox emulator, the
    /// proxy in front with the embedded store. Prints the URLs to open.
    Demo {
        /// Address the proxy listens on; port 0 picks a free port.
        #[arg(long, default_value = "127.0.0.1:8080")]
        listen: String,
        /// Where the sample and the embedded store are written [default: <tmp>/dropcache-demo].
        #[arg(long)]
        dir: Option<PathBuf>,
    },
    /// Run a local Dropbox API v2 emulator (api, content and notify routes on one listener).
    Emulator(Box<EmulatorArgs>),
    /// Link, list and unlink Dropbox accounts on a running proxy (through its admin API).
    Accounts(AccountsArgs),
    /// Validate a config file and exit non-zero naming the offending key (like `nginx -t`).
    CheckConfig {
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
    },
}

#[derive(Args)]
struct AccountsArgs {
    /// The proxy's config file: where it listens, and its admin token.
    #[arg(long, value_name = "FILE", global = true)]
    config: Option<PathBuf>,
    /// The proxy's URL [default: http://<server.listen> from --config].
    #[arg(long, value_name = "URL", global = true)]
    server: Option<String>,
    /// The admin token [default: admin.token from --config].
    #[arg(
        long,
        env = "DROPCACHE_ADMIN_TOKEN",
        hide_env_values = true,
        global = true
    )]
    admin_token: Option<String>,
    #[command(subcommand)]
    action: AccountsAction,
}

#[derive(Subcommand)]
enum AccountsAction {
    /// Link a Dropbox account as NAME: prints Dropbox's authorize URL, then finishes when the
    /// browser comes back to the proxy, or when you paste the code (or the URL it landed on).
    Link {
        name: String,
        /// The folder to publish ("" is the whole app folder or Dropbox).
        #[arg(long, default_value = "")]
        root: String,
        /// Have Dropbox show a code to paste instead of redirecting to oauth.redirect_uri.
        #[arg(long)]
        no_redirect: bool,
        /// Give up after this long.
        #[arg(long, default_value = "10m", value_parser = humantime::parse_duration)]
        wait: Duration,
    },
    /// List the published accounts.
    List,
    /// Stop publishing a linked account NAME, revoke its token and forget it.
    Unlink { name: String },
}

#[derive(Args)]
struct EmulatorArgs {
    /// Address to listen on; port 0 picks a free port. The first line of stdout says
    /// `listening on http://IP:PORT` (or https).
    #[arg(long, default_value = "127.0.0.1:8900")]
    listen: String,
    /// The default account's files are this directory; API changes are written there.
    #[arg(long, conflicts_with = "memory")]
    root: Option<PathBuf>,
    /// Keep the default account's files in memory (the default when no --root is given).
    #[arg(long)]
    memory: bool,
    /// A fixed, never-expiring access token for the default account.
    #[arg(long, env = "DROPCACHE_EMULATOR_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// Display name of the default account.
    #[arg(long, default_value = "Emulator User")]
    name: String,
    /// More accounts: NAME[:TOKEN[:DIR]] (repeatable; in memory unless DIR is given).
    #[arg(long = "account", value_name = "SPEC")]
    accounts: Vec<AccountSpec>,
    /// App key, for app auth (Basic), OAuth and webhooks.
    #[arg(long, default_value = "dropcache-emulator")]
    app_key: String,
    /// App secret (signs webhooks).
    #[arg(
        long,
        env = "DROPCACHE_EMULATOR_APP_SECRET",
        hide_env_values = true,
        default_value = "dropcache-emulator-secret",
        hide_default_value = true
    )]
    app_secret: String,
    /// PEM certificate chain: serve HTTPS.
    #[arg(long, requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// PEM private key for --tls-cert.
    #[arg(long, requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Send signed webhook notifications to this URL (after a verification GET).
    #[arg(long)]
    webhook: Option<String>,
    /// Lifetime of access tokens minted by /oauth2/token, e.g. 4h or 30s.
    #[arg(long, default_value = "4h", value_parser = humantime::parse_duration)]
    token_lifetime: Duration,
    /// Serve /_emulator/* (request log, faults, forced token expiry and cursor reset).
    #[arg(long)]
    admin: bool,
    /// Fault rule ROUTE=KIND[,share=F][,times=N]; KIND is 429[:SECS], a 5xx code,
    /// slow:BYTES_PER_SEC, stall:BYTES or cut:BYTES (repeatable).
    #[arg(long = "fault", value_name = "RULE")]
    faults: Vec<FaultRule>,
    /// Latency added before every API answer, e.g. 50ms.
    #[arg(long, default_value = "0ms", value_parser = humantime::parse_duration)]
    latency: Duration,
    /// `backoff` seconds to put in every longpoll answer.
    #[arg(long)]
    longpoll_backoff: Option<u64>,
    /// Up to this much random extra wait on longpolls (Dropbox adds up to 90s).
    #[arg(long, default_value = "0s", value_parser = humantime::parse_duration)]
    longpoll_jitter: Duration,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    if !matches!(cli.command, Command::Serve { .. } | Command::Demo { .. }) {
        dropcache::telemetry::init();
    }
    match cli.command {
        Command::Serve { config } => run_serve(&config).await,
        Command::Demo { listen, dir } => run_demo(&listen, dir).await,
        Command::Emulator(args) => run_emulator(*args).await,
        Command::Accounts(args) => run_accounts(args).await,
        Command::CheckConfig { config } => check_config(&config),
    }
}

async fn run_accounts(args: AccountsArgs) -> anyhow::Result<()> {
    use dropcache::console::Console;
    use dropcache::secret::Secret;
    let config = args.config.as_deref().map(load_config);
    let server = match (args.server, &config) {
        (Some(s), _) => s,
        (None, Some(c)) => {
            let mut addr = c.listen;
            if addr.ip().is_unspecified() {
                addr.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
            }
            format!("http://{addr}")
        }
        (None, None) => anyhow::bail!("say which proxy: --server URL or --config FILE"),
    };
    let token = args
        .admin_token
        .or_else(|| config.as_ref()?.admin_token.as_ref().map(|t| t.expose().clone()))
        .context("the admin token is needed: --admin-token, DROPCACHE_ADMIN_TOKEN or admin.token in --config")?;
    let console = Console::new(&server, Secret::new(token))?;
    match args.action {
        AccountsAction::Link {
            name,
            root,
            no_redirect,
            wait,
        } => {
            let mut out = std::io::stdout();
            let done = console
                .link(&name, &root, !no_redirect, wait, &mut out)
                .await?;
            println!("{done}");
        }
        AccountsAction::List => {
            let list = console.list().await?;
            println!(
                "{:<20} {:<8} {:<24} DROPBOX ACCOUNT",
                "ALIAS", "ORIGIN", "ROOT"
            );
            for a in list {
                let who = match (a["name"].as_str(), a["email"].as_str()) {
                    (Some(n), Some(e)) => format!("{n} <{e}>"),
                    _ => "-".into(),
                };
                let relink = if a["relink_required"].as_bool() == Some(true) {
                    "  (must be linked again)"
                } else {
                    ""
                };
                let root = a["root"].as_str().unwrap_or_default();
                println!(
                    "{:<20} {:<8} {:<24} {who}{relink}",
                    a["alias"].as_str().unwrap_or_default(),
                    a["origin"].as_str().unwrap_or_default(),
                    if root.is_empty() { "(all)" } else { root },
                );
            }
        }
        AccountsAction::Unlink { name } => {
            let done = console.unlink(&name).await?;
            if done["revoked"].as_bool() == Some(true) {
                println!("unlinked {name}; its Dropbox token is revoked");
            } else {
                println!(
                    "unlinked {name}; its token could not be revoked ({}): revoke it at https://www.dropbox.com/account/connected_apps",
                    done["revoke_error"].as_str().unwrap_or("unknown")
                );
            }
        }
    }
    // Reading stdin holds a thread that would keep the runtime from ending.
    std::process::exit(0)
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

fn load_config(path: &std::path::Path) -> Config {
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
        writeln!(out, "published as /{a}/ (its /site folder). Open:")?;
        for (path, what) in [
            ("index.html", "the sample site"),
            ("photos/", "a folder (HTML in a browser, JSON for curl)"),
            (
                "photos/sunset.jpg",
                "an image (try curl -I, Range, If-None-Match)",
            ),
        ] {
            writeln!(out, "  http://{addr}/{a}/{path:<20} {what}")?;
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
