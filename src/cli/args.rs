//! The command line's arguments.

use clap::{Args, Parser, Subcommand};
use dropcache::emulator::AccountSpec;
use dropcache::emulator::faults::FaultRule;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Parser)]
#[command(
    name = "dropcache",
    version,
    about = "A caching HTTP reverse proxy in front of Dropbox"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
pub enum Command {
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
pub struct AccountsArgs {
    /// The proxy's config file: where it listens, and its admin token.
    #[arg(long, value_name = "FILE", global = true)]
    pub config: Option<PathBuf>,
    /// The proxy's URL [default: http://<server.listen> from --config].
    #[arg(long, value_name = "URL", global = true)]
    pub server: Option<String>,
    /// The admin token [default: admin.token from --config].
    #[arg(
        long,
        env = "DROPCACHE_ADMIN_TOKEN",
        hide_env_values = true,
        global = true
    )]
    pub admin_token: Option<String>,
    #[command(subcommand)]
    pub action: AccountsAction,
}

#[derive(Subcommand)]
pub enum AccountsAction {
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
pub struct EmulatorArgs {
    /// Address to listen on; port 0 picks a free port. The first line of stdout says
    /// `listening on http://IP:PORT` (or https).
    #[arg(long, default_value = "127.0.0.1:8900")]
    pub listen: String,
    /// The default account's files are this directory; API changes are written there.
    #[arg(long, conflicts_with = "memory")]
    pub root: Option<PathBuf>,
    /// Keep the default account's files in memory (the default when no --root is given).
    #[arg(long)]
    pub memory: bool,
    /// A fixed, never-expiring access token for the default account.
    #[arg(long, env = "DROPCACHE_EMULATOR_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Display name of the default account.
    #[arg(long, default_value = "Emulator User")]
    pub name: String,
    /// More accounts: NAME[:TOKEN[:DIR]] (repeatable; in memory unless DIR is given).
    #[arg(long = "account", value_name = "SPEC")]
    pub accounts: Vec<AccountSpec>,
    /// App key, for app auth (Basic), OAuth and webhooks.
    #[arg(long, default_value = "dropcache-emulator")]
    pub app_key: String,
    /// App secret (signs webhooks).
    #[arg(
        long,
        env = "DROPCACHE_EMULATOR_APP_SECRET",
        hide_env_values = true,
        default_value = "dropcache-emulator-secret",
        hide_default_value = true
    )]
    pub app_secret: String,
    /// PEM certificate chain: serve HTTPS.
    #[arg(long, requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key for --tls-cert.
    #[arg(long, requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Send signed webhook notifications to this URL (after a verification GET).
    #[arg(long)]
    pub webhook: Option<String>,
    /// Lifetime of access tokens minted by /oauth2/token, e.g. 4h or 30s.
    #[arg(long, default_value = "4h", value_parser = humantime::parse_duration)]
    pub token_lifetime: Duration,
    /// Serve /_emulator/* (request log, faults, forced token expiry and cursor reset).
    #[arg(long)]
    pub admin: bool,
    /// Fault rule ROUTE=KIND[,share=F][,times=N]; KIND is 429[:SECS], a 5xx code,
    /// slow:BYTES_PER_SEC, stall:BYTES or cut:BYTES (repeatable).
    #[arg(long = "fault", value_name = "RULE")]
    pub faults: Vec<FaultRule>,
    /// Latency added before every API answer, e.g. 50ms.
    #[arg(long, default_value = "0ms", value_parser = humantime::parse_duration)]
    pub latency: Duration,
    /// `backoff` seconds to put in every longpoll answer.
    #[arg(long)]
    pub longpoll_backoff: Option<u64>,
    /// Up to this much random extra wait on longpolls (Dropbox adds up to 90s).
    #[arg(long, default_value = "0s", value_parser = humantime::parse_duration)]
    pub longpoll_jitter: Duration,
}
