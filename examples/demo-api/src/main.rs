//! `demo-api [--port N]` serves; `demo-api migrate` creates the schema and exits.

use std::io::Write as _;
use std::process::ExitCode;

use demo_api::{Config, Server, parse_port};
use tokio::signal::unix::{SignalKind, signal};

const USAGE: &str = "\
usage: demo-api [--port N]     serve on $DEMO_HOST:N (default: $PORT)
       demo-api migrate        create or update the database schema, then exit
       demo-api healthcheck    exit 0 when 127.0.0.1:$PORT/health answers 200

environment:
  PORT                  port to listen on (required unless --port is given)
  DEMO_HOST             address to listen on (default 127.0.0.1)
  DEMO_DB               SQLite file (default $BERTH_VOLUME_DATA/demo.sqlite,
                        else ./data/demo.sqlite)
  DATABASE_URL          postgres://user@host:port/db: PostgreSQL instead of SQLite
  REDIS_URL             redis://host:port: count the items added (GET /api/counter)
  BERTH_REPLICA         replica number shown in responses (default 1)
  BERTH_SERVICE         service name shown by /api/whoami (default demo-api)
  DEMO_UNHEALTHY_FILE   /health answers 503 while this file exists ({replica}: the replica's number)
  DEMO_DRAIN_TIMEOUT_MS how long shutdown waits for in-flight requests (default 5000)
  DEMO_ACCESS_LOG=1     log every request to stderr";

enum Command {
    Serve { port: Option<u16> },
    Migrate,
    Healthcheck,
    Help,
}

fn parse_args(args: impl IntoIterator<Item = String>) -> Result<Command, String> {
    let mut port = None;
    let mut migrate = false;
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "-h" | "--help" | "help" => return Ok(Command::Help),
            "migrate" => migrate = true,
            "healthcheck" => return Ok(Command::Healthcheck),
            "--port" | "-p" => {
                let value = args.next().ok_or("--port needs a value")?;
                port = Some(parse_port(&value).map_err(|e| format!("invalid --port: {e}"))?);
            }
            other => match other.strip_prefix("--port=") {
                Some(value) => {
                    port = Some(parse_port(value).map_err(|e| format!("invalid --port: {e}"))?);
                }
                None => return Err(format!("unexpected argument {other:?}")),
            },
        }
    }
    Ok(if migrate {
        Command::Migrate
    } else {
        Command::Serve { port }
    })
}

fn main() -> ExitCode {
    let command = match parse_args(std::env::args().skip(1)) {
        Ok(command) => command,
        Err(e) => {
            eprintln!("demo-api: {e}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    match command {
        Command::Help => {
            println!("{USAGE}");
            ExitCode::SUCCESS
        }
        Command::Migrate => migrate(),
        Command::Healthcheck => healthcheck(),
        Command::Serve { port } => match Config::from_env(port) {
            Ok(config) => serve(config),
            Err(e) => {
                eprintln!("demo-api: {e}");
                ExitCode::from(2)
            }
        },
    }
}

/// A health probe for `healthcheck: test: [CMD, demo-api, healthcheck]`:
/// GET /health on this replica's port, exit 0 on 200.
fn healthcheck() -> ExitCode {
    use std::io::Read as _;
    use std::time::Duration;
    let port = match std::env::var("PORT").ok().map(|p| parse_port(&p)) {
        Some(Ok(port)) => port,
        _ => {
            eprintln!("demo-api healthcheck: PORT is not set to a port");
            return ExitCode::from(2);
        }
    };
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let result = (|| -> std::io::Result<bool> {
        let mut s = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
        s.set_read_timeout(Some(Duration::from_secs(2)))?;
        s.write_all(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")?;
        let mut head = [0u8; 12];
        s.read_exact(&mut head)?;
        Ok(head.starts_with(b"HTTP/1.1 200"))
    })();
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => {
            eprintln!("demo-api healthcheck: /health did not answer 200");
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("demo-api healthcheck: {addr}: {e}");
            ExitCode::FAILURE
        }
    }
}

fn migrate() -> ExitCode {
    if let Some(url) = demo_api::store::postgres_url() {
        let migrated = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(demo_api::DbError::Io)
            .and_then(|rt| rt.block_on(demo_api::store::migrate_postgres(&url)));
        return match migrated {
            Ok(count) => {
                println!("migration done ({count} items, PostgreSQL)");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("demo-api: migration of the PostgreSQL database failed: {e}");
                ExitCode::FAILURE
            }
        };
    }
    let path = demo_api::db_path();
    match demo_api::migrate(path.as_ref()) {
        Ok(count) => {
            println!("migration done ({count} items)");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("demo-api: migration of {path} failed: {e}");
            ExitCode::FAILURE
        }
    }
}

fn serve(config: Config) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("demo-api: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async move {
        let replica = config.replica.clone();
        let server = match Server::bind(config).await {
            Ok(server) => server,
            Err(e) => {
                eprintln!("demo-api: {e}");
                return ExitCode::FAILURE;
            }
        };
        // Install the handlers before announcing readiness, so that a signal
        // sent right after the "listening" line is never lost.
        let (mut term, mut int) = match (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        ) {
            (Ok(term), Ok(int)) => (term, int),
            (Err(e), _) | (_, Err(e)) => {
                eprintln!("demo-api: cannot install signal handlers: {e}");
                return ExitCode::FAILURE;
            }
        };
        let addr = match server.local_addr() {
            Ok(addr) => addr,
            Err(e) => {
                eprintln!("demo-api: {e}");
                return ExitCode::FAILURE;
            }
        };
        let mut stdout = std::io::stdout().lock();
        let _ = writeln!(stdout, "demo-api replica {replica} listening on {addr}");
        let _ = stdout.flush();
        drop(stdout);
        server
            .run(async move {
                let name = tokio::select! {
                    _ = term.recv() => "SIGTERM",
                    _ = int.recv() => "SIGINT",
                };
                // Not println!: a closed stdout must not turn shutdown into a panic.
                let mut stdout = std::io::stdout().lock();
                let _ = writeln!(stdout, "demo-api replica {replica} got {name}, draining");
                let _ = stdout.flush();
            })
            .await;
        ExitCode::SUCCESS
    })
}
