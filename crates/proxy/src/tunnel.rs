//! A protocol switch (`Upgrade`, WebSocket) passed through both ways.
//!
//! Once the client and the replica have both switched, bytes are copied in
//! both directions until either side closes, nothing moves for
//! `websocket_idle`, or shutdown's grace period ends. A WebSocket closed by
//! the proxy gets a Close frame (1001, going away) first.

use std::sync::Arc;
use std::time::Duration;

use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use tokio::io::AsyncWriteExt;
use tokio_util::sync::CancellationToken;

use crate::activity::{Activity, Tracked, idle};
use crate::balancer::ActiveGuard;
use crate::shared::Shared;

/// Close frame, server to client: FIN + close opcode, code 1001.
const WS_GOING_AWAY: [u8; 4] = [0x88, 0x02, 0x03, 0xE9];

/// How a tunnel is bounded.
#[derive(Debug, Clone)]
struct TunnelLimits {
    idle: Duration,
    websocket: bool,
    /// Cancelled when the proxy shuts down.
    shutdown: CancellationToken,
    /// How long a tunnel may go on after shutdown starts.
    grace: Duration,
}

/// Starts the tunnel for a `101` answer, tracked with the connections and
/// dropped at the drain deadline. `busy` is released when the tunnel ends.
pub(crate) fn spawn(
    shared: &Shared,
    client: OnUpgrade,
    upstream: OnUpgrade,
    websocket: bool,
    busy: Option<ActiveGuard>,
) {
    let limits = TunnelLimits {
        idle: shared.table().timeouts.websocket_idle,
        websocket,
        shutdown: shared.shutdown.clone(),
        grace: shared.websocket_grace,
    };
    let hard_stop = shared.hard_stop.clone();
    shared.tasks.spawn(async move {
        let _busy = busy;
        tokio::select! {
            () = run(client, upstream, limits) => {}
            () = hard_stop.cancelled() => {}
        }
    });
}

/// Waits for both upgrades, then copies until one side ends or a limit hits.
async fn run(client: OnUpgrade, upstream: OnUpgrade, limits: TunnelLimits) {
    let (client, upstream) = match tokio::try_join!(client, upstream) {
        Ok(pair) => pair,
        Err(e) => {
            tracing::debug!(error = %e, "upgrade did not complete");
            return;
        }
    };
    let activity = Arc::new(Activity::default());
    let mut client = Tracked::new(TokioIo::new(client), activity.clone());
    let mut upstream = TokioIo::new(upstream);
    let ended_by_proxy = tokio::select! {
        result = tokio::io::copy_bidirectional(&mut client, &mut upstream) => {
            if let Err(e) = result {
                tracing::debug!(error = %e, "tunnel ended");
            }
            false
        }
        () = idle(&activity, limits.idle) => true,
        () = async {
            limits.shutdown.cancelled().await;
            tokio::time::sleep(limits.grace).await;
        } => true,
    };
    if ended_by_proxy && limits.websocket {
        let goodbye = async {
            let _ = client.write_all(&WS_GOING_AWAY).await;
            let _ = client.flush().await;
        };
        let _ = tokio::time::timeout(Duration::from_secs(1), goodbye).await;
    }
    let _ = tokio::time::timeout(Duration::from_secs(1), client.shutdown()).await;
    let _ = tokio::time::timeout(Duration::from_secs(1), upstream.shutdown()).await;
}
