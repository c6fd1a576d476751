//! `berth dashboard [--json]`: where the running stack's dashboard is, and a
//! login link that works once, for ten minutes. Opens nothing by itself.

use clap::Args;

use super::{Failure, Global, connect};
use crate::dashboard::Login;

#[derive(Debug, Args)]
pub struct DashboardArgs {
    /// Print `{urls, login, basic}` as JSON
    #[arg(long)]
    json: bool,
}

pub fn run(global: &Global, args: DashboardArgs) -> Result<(), Failure> {
    let (client, project) = connect(global)?;
    if project.settings.dashboard.is_none() {
        return Err(Failure::Usage(format!(
            "{} has no dashboard: add to the file\n  x-berth:\n    dashboard:\n      listen: \"127.0.0.1:8081\"\nand run `berth up` again",
            project.name
        )));
    }
    let login: Login = super::block_on(client.post("/v1/dashboard/login", &()))?;
    let links: Vec<String> = login
        .urls
        .iter()
        .map(|u| format!("{u}?token={}", login.code))
        .collect();
    if args.json {
        let value = serde_json::json!({
            "urls": login.urls,
            "login": links,
            "basic": login.basic.as_ref().map(|(user, file)| serde_json::json!({"user": user, "password_file": file})),
        });
        return super::print_stdout(&format!("{value}\n"));
    }
    let mut text = String::new();
    for (url, link) in login.urls.iter().zip(&links) {
        text.push_str(&format!(
            "Dashboard: {url}\n  log in (once, within 10 minutes): {link}\n"
        ));
    }
    if let Some((user, file)) = &login.basic {
        text.push_str(&format!(
            "  or log in as {user} with the password in {file}\n"
        ));
    }
    super::print_stdout(&text)
}
