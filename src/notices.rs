//! What the edge proxy has to say (a certificate reloaded or renewed, an
//! ACME order that failed, a listener that cannot accept) goes to the
//! stack's log stream under `proxy`, like its access log: the proxy reports
//! through `tracing`, and this layer forwards its INFO, WARN and ERROR
//! events. Per-connection chatter is DEBUG and stays out.

use std::fmt::Write as _;

use berth_engine::logs::LogHub;
use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::layer::{Context, Layer};

/// Forwards the proxy's events to `logs`.
#[derive(Debug)]
struct ProxyNotices {
    logs: LogHub,
    /// The stack's runtime: the log file is written through it, also for
    /// events from threads of the proxy's own (the certificate watcher).
    runtime: Option<tokio::runtime::Handle>,
}

/// Installs the forwarding for this process (once; later calls keep the
/// first). Call it from within the stack's runtime.
pub fn forward_proxy_notices(logs: &LogHub) {
    use tracing_subscriber::layer::SubscriberExt;
    let notices = ProxyNotices {
        logs: logs.clone(),
        runtime: tokio::runtime::Handle::try_current().ok(),
    };
    let subscriber = tracing_subscriber::registry().with(notices);
    let _ = tracing::subscriber::set_global_default(subscriber);
}

impl<S: Subscriber> Layer<S> for ProxyNotices {
    fn on_event(&self, event: &Event<'_>, _: Context<'_, S>) {
        let meta = event.metadata();
        if !meta.target().starts_with("berth_proxy") || *meta.level() > Level::INFO {
            return;
        }
        let mut text = Text::default();
        event.record(&mut text);
        let level = match *meta.level() {
            Level::ERROR => "error: ",
            Level::WARN => "warning: ",
            _ => "",
        };
        let _entered = match (&self.runtime, tokio::runtime::Handle::try_current()) {
            (Some(runtime), Err(_)) => Some(runtime.enter()),
            _ => None,
        };
        self.logs.system(
            "proxy",
            0,
            format!("{level}{}{}", text.message, text.fields),
        );
    }
}

/// An event's message, then its other fields as ` name=value`.
#[derive(Default)]
struct Text {
    message: String,
    fields: String,
}

impl Visit for Text {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.message.push_str(value);
        } else {
            let _ = write!(self.fields, " {}={value}", field.name());
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            let _ = write!(self.message, "{value:?}");
        } else {
            let _ = write!(self.fields, " {}={value:?}", field.name());
        }
    }
}
