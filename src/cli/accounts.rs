//! `dropcache accounts`: the admin API's client at the terminal (linking waits for the
//! browser or a pasted code; the list is a table).

use super::args::{AccountsAction, AccountsArgs};
use anyhow::Context;

/// `dropcache accounts …`: link, list or unlink through a running proxy's admin API.
pub async fn run(args: AccountsArgs) -> anyhow::Result<()> {
    use dropcache::console::Console;
    use dropcache::secret::Secret;
    let config = args.config.as_deref().map(crate::load_config);
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
