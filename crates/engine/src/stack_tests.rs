//! Ordering, backoff and restart logic against the recording fake runtime,
//! on a paused clock (real-process tests live in the integration tests).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::logs::LogHub;
use crate::runtime::fake::{FakeRuntime, Record, Script};
use crate::runtime::{ProbeResult, SpawnError};
use crate::stack::{Settled, Stack, UpOptions};
use crate::state::ReplicaState;

fn plans(yaml: &str) -> Vec<crate::plan::ServicePlan> {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("compose.yaml"), yaml).unwrap();
    let opts = berth_compose::LoadOptions::new(dir.path(), Default::default());
    let project = berth_compose::load(&opts)
        .unwrap_or_else(|d| panic!("{}", d.render(false)))
        .project;
    crate::plan::plan(&project, &BTreeMap::new())
}

async fn start(yaml: &str, fake: &FakeRuntime) -> Arc<Stack> {
    let logs = LogHub::new(tempfile::tempdir().unwrap().keep()).unwrap();
    let options = UpOptions {
        build: false,
        ..UpOptions::default()
    };
    Stack::start(
        "t",
        plans(yaml),
        Arc::new(fake.clone()),
        logs,
        &options,
        CancellationToken::new(),
    )
    .await
    .unwrap()
}

fn ms(d: Duration) -> u128 {
    d.as_millis()
}

/// Lets every ready task run at the current (paused) instant.
async fn settle() {
    for _ in 0..50 {
        tokio::task::yield_now().await;
    }
}

#[tokio::test(start_paused = true)]
async fn dependents_start_in_order_under_every_condition() {
    let fake = FakeRuntime::new();
    fake.script(
        "migrate",
        Script {
            run_for: Some(Duration::from_secs(2)),
            code: 0,
        },
    );
    // db's health check fails twice (1 s apart) before passing.
    fake.probes(
        "db-1 healthcheck",
        vec![
            ProbeResult::Fail("no".into()),
            ProbeResult::Fail("no".into()),
            ProbeResult::Pass,
        ],
    );
    let stack = start(
        "services:\n  db:\n    command: [db]\n    healthcheck: {test: [CMD, check], retries: 5}\n  migrate:\n    command: [migrate]\n    depends_on: {db: {condition: service_healthy}}\n  api:\n    command: [api]\n    depends_on:\n      migrate: {condition: service_completed_successfully}\n      db: {condition: service_healthy}\n  web:\n    command: [web]\n    depends_on: [api]\n",
        &fake,
    )
    .await;
    tokio::time::sleep(Duration::from_secs(10)).await;
    let first = |label: &str| fake.spawns(label).first().copied().map(ms);
    assert_eq!(first("db-1"), Some(0));
    // Healthy at the third probe: 0 s, 1 s, 2 s.
    assert_eq!(first("migrate-1"), Some(2000));
    assert_eq!(first("api-1"), Some(4000));
    assert_eq!(first("web-1"), Some(4000));
    let migrate = stack.service("migrate").unwrap().snapshot();
    assert_eq!(migrate[0].state, ReplicaState::Exited);
    stack.stop().await;
}

#[tokio::test(start_paused = true)]
async fn restart_backoff_doubles_and_resets_after_ten_seconds_up() {
    let fake = FakeRuntime::new();
    fake.script(
        "crashy",
        Script {
            run_for: Some(Duration::from_secs(1)),
            code: 1,
        },
    );
    let stack = start(
        "services:\n  crashy:\n    command: [x]\n    restart: always\n",
        &fake,
    )
    .await;
    tokio::time::sleep(Duration::from_secs(8)).await;
    let spawns: Vec<u128> = fake.spawns("crashy-1").into_iter().map(ms).collect();
    // Runs 1 s each; backoff 100, 200, 400, 800, 1600 ms...
    assert_eq!(spawns, vec![0, 1100, 2300, 3700, 5500]);
    stack.stop().await;

    // A replica that stayed up 10 s goes back to the first backoff.
    let fake = FakeRuntime::new();
    fake.script(
        "steady",
        Script {
            run_for: Some(Duration::from_secs(12)),
            code: 1,
        },
    );
    let stack = start(
        "services:\n  steady:\n    command: [x]\n    restart: on-failure\n",
        &fake,
    )
    .await;
    tokio::time::sleep(Duration::from_secs(40)).await;
    let spawns: Vec<u128> = fake.spawns("steady-1").into_iter().map(ms).collect();
    assert_eq!(spawns[..3], [0, 12100, 24200]);
    stack.stop().await;
}

#[tokio::test(start_paused = true)]
async fn on_failure_gives_up_after_its_retries_and_no_never_restarts() {
    let fake = FakeRuntime::new();
    fake.script(
        "flaky",
        Script {
            run_for: Some(Duration::from_millis(500)),
            code: 3,
        },
    );
    fake.script(
        "once",
        Script {
            run_for: Some(Duration::from_millis(500)),
            code: 3,
        },
    );
    let stack = start(
        "services:\n  flaky:\n    command: [x]\n    restart: on-failure:2\n  once:\n    command: [y]\n",
        &fake,
    )
    .await;
    let settled = tokio::time::timeout(Duration::from_secs(60), stack.settled())
        .await
        .unwrap();
    assert_eq!(settled, Settled::Finished { success: false });
    assert_eq!(fake.spawns("flaky-1").len(), 3);
    assert_eq!(fake.spawns("once-1").len(), 1);
    let flaky = stack.service("flaky").unwrap().snapshot();
    assert_eq!(flaky[0].state, ReplicaState::Exited);
    assert_eq!(flaky[0].restarts, 2);
}

#[tokio::test(start_paused = true)]
async fn an_unhealthy_replica_is_restarted_unless_the_policy_is_no() {
    let fake = FakeRuntime::new();
    fake.probes(
        "api-1 healthcheck",
        vec![
            ProbeResult::Pass,
            ProbeResult::Fail("down".into()),
            ProbeResult::Fail("down".into()),
            ProbeResult::Pass,
        ],
    );
    fake.probes(
        "keep-1 healthcheck",
        vec![ProbeResult::Pass, ProbeResult::Fail("down".into())],
    );
    let stack = start(
        "services:\n  api:\n    command: [x]\n    restart: always\n    healthcheck: {test: [CMD, c], interval: 5s, retries: 2}\n  keep:\n    command: [y]\n    healthcheck: {test: [CMD, c], interval: 5s, retries: 2}\n",
        &fake,
    )
    .await;
    tokio::time::sleep(Duration::from_secs(20)).await;
    // Probes at 0 (pass), 5 (fail), 10 (fail -> unhealthy): out of the
    // balancer and drained (100 ms deregistration, then nothing in use),
    // SIGTERM at 10.1 s, restart 100 ms later.
    let signals: Vec<(String, i32, u128)> = fake
        .records()
        .into_iter()
        .filter_map(|r| match r {
            Record::Signal { label, signal, at } => Some((label, signal, ms(at))),
            _ => None,
        })
        .collect();
    assert_eq!(signals, vec![("api-1".to_string(), libc::SIGTERM, 10_100)]);
    assert_eq!(
        fake.spawns("api-1").into_iter().map(ms).collect::<Vec<_>>(),
        vec![0, 10_200]
    );
    let keep = stack.service("keep").unwrap().snapshot();
    assert_eq!(keep[0].state, ReplicaState::Running);
    assert_eq!(keep[0].health, crate::state::Health::Unhealthy);
    assert!(!keep[0].ready);
    stack.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_failed_dependency_blocks_its_dependents_and_names_both() {
    let fake = FakeRuntime::new();
    fake.script(
        "migrate",
        Script {
            run_for: Some(Duration::from_secs(1)),
            code: 2,
        },
    );
    let stack = start(
        "services:\n  migrate:\n    command: [m]\n  api:\n    command: [a]\n    depends_on: {migrate: {condition: service_completed_successfully}}\n  other:\n    command: [o]\n",
        &fake,
    )
    .await;
    let settled = tokio::time::timeout(Duration::from_secs(10), stack.settled())
        .await
        .unwrap();
    assert_eq!(
        settled,
        Settled::Failed(vec![
            "api-1: not started: dependency migrate failed (exited with code 2)".into()
        ])
    );
    assert!(fake.spawns("api-1").is_empty());
    stack.stop().await;
    assert_eq!(
        stack.service("other").unwrap().snapshot()[0].state,
        ReplicaState::Stopped
    );
}

#[tokio::test(start_paused = true)]
async fn stop_goes_in_reverse_dependency_order_and_kills_after_the_grace_period() {
    let fake = FakeRuntime::new();
    // api traps SIGTERM and goes on: only SIGKILL ends it.
    fake.ignore("api", libc::SIGTERM);
    let stack = start(
        "services:\n  db:\n    command: [d]\n  api:\n    command: [a]\n    depends_on: [db]\n    stop_grace_period: 3s\n",
        &fake,
    )
    .await;
    settle().await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    // Without the SIGKILL, api would never end: fail rather than hang.
    tokio::time::timeout(Duration::from_secs(60), stack.stop())
        .await
        .expect("the stack did not stop");
    let signals: Vec<(String, i32, u128)> = fake
        .records()
        .into_iter()
        .filter_map(|r| match r {
            Record::Signal { label, signal, at } => Some((label, signal, ms(at))),
            _ => None,
        })
        .collect();
    // api (the dependent) goes first, and is killed once its 3 s are up;
    // only then is db (which exits on its first signal) stopped.
    assert_eq!(
        signals,
        vec![
            ("api-1".into(), libc::SIGTERM, 1000),
            ("api-1".into(), libc::SIGKILL, 4000),
            ("db-1".into(), libc::SIGTERM, 4000)
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn a_missing_command_fails_the_replica_with_one_clear_line() {
    let fake = FakeRuntime::new();
    fake.fail_spawn(
        "api",
        SpawnError::NotFound {
            program: "./target/release/api".into(),
        },
    );
    let stack = start(
        "services:\n  api:\n    command: [./target/release/api]\n",
        &fake,
    )
    .await;
    let settled = tokio::time::timeout(Duration::from_secs(5), stack.settled())
        .await
        .unwrap();
    assert_eq!(
        settled,
        Settled::Failed(vec![
            "api-1: cannot start api-1: command not found: ./target/release/api".into()
        ])
    );
}

#[tokio::test(start_paused = true)]
async fn scale_overrides_the_file() {
    let fake = FakeRuntime::new();
    let options = UpOptions {
        build: false,
        scale: BTreeMap::from([("api".to_string(), 3)]),
    };
    let stack = Stack::start(
        "t",
        plans("services:\n  api:\n    command: [a]\n    deploy: {replicas: 2}\n"),
        Arc::new(fake.clone()),
        LogHub::new(tempfile::tempdir().unwrap().keep()).unwrap(),
        &options,
        CancellationToken::new(),
    )
    .await
    .unwrap();
    settle().await;
    let snap = stack.service("api").unwrap().snapshot();
    assert_eq!(snap.len(), 3);
    assert!(
        snap.iter()
            .all(|r| r.state == ReplicaState::Running && r.ready)
    );
    assert_eq!(fake.spawns("api-3").len(), 1);
    stack.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_rolling_restart_starts_the_new_process_before_stopping_the_old() {
    let fake = FakeRuntime::new();
    let stack = start(
        "services:\n  api:\n    command: [a]\n    deploy: {replicas: 2}\n",
        &fake,
    )
    .await;
    settle().await;
    let before: Vec<Option<u32>> = stack
        .service("api")
        .unwrap()
        .snapshot()
        .iter()
        .map(|r| r.pid)
        .collect();
    let report = stack.restart("api").await.unwrap();
    assert_eq!(
        report,
        vec![
            "api-1: restarted without downtime",
            "api-2: restarted without downtime"
        ]
    );
    tokio::time::sleep(Duration::from_secs(1)).await;
    let records = fake.records();
    let order: Vec<String> = records
        .iter()
        .filter_map(|r| match r {
            Record::Spawn { label, .. } => Some(format!("spawn {label}")),
            Record::Signal { label, .. } => Some(format!("signal {label}")),
            Record::Probe { .. } => None,
        })
        .collect();
    // Each new process starts before its old one is signalled (the old one
    // is stopped in the background, after the switch).
    let pos = |what: &str, nth: usize| {
        order
            .iter()
            .enumerate()
            .filter(|(_, o)| *o == what)
            .nth(nth)
            .map(|(i, _)| i)
    };
    for name in ["api-1", "api-2"] {
        let new = pos(&format!("spawn {name}"), 1).expect("a second spawn");
        let old_stopped = pos(&format!("signal {name}"), 0).expect("the old one is stopped");
        assert!(new < old_stopped, "{order:?}");
    }
    assert_eq!(order.len(), 6, "{order:?}");
    let after = stack.service("api").unwrap().snapshot();
    assert!(
        after
            .iter()
            .all(|r| r.state == ReplicaState::Running && r.ready)
    );
    let after: Vec<Option<u32>> = after.iter().map(|r| r.pid).collect();
    assert_ne!(before, after);
    stack.stop().await;
}

#[tokio::test(start_paused = true)]
async fn scale_up_and_down_while_running() {
    let fake = FakeRuntime::new();
    let stack = start("services:\n  api:\n    command: [a]\n", &fake).await;
    settle().await;
    stack.scale("api", 4).await.unwrap();
    settle().await;
    let snap = stack.service("api").unwrap().snapshot();
    assert_eq!(
        snap.iter().map(|r| r.index).collect::<Vec<_>>(),
        vec![1, 2, 3, 4]
    );
    assert!(snap.iter().all(|r| r.ready));
    stack.scale("api", 1).await.unwrap();
    let snap = stack.service("api").unwrap().snapshot();
    assert_eq!(snap.iter().map(|r| r.index).collect::<Vec<_>>(), vec![1]);
    assert_eq!(fake.spawns("api-4").len(), 1);
    assert!(stack.scale("nope", 1).await.is_err());
    stack.stop().await;
}

#[tokio::test(start_paused = true)]
async fn stop_and_start_a_single_service() {
    let fake = FakeRuntime::new();
    let stack = start(
        "services:\n  a:\n    command: [a]\n  b:\n    command: [b]\n",
        &fake,
    )
    .await;
    settle().await;
    stack.stop_service("b").await.unwrap();
    assert_eq!(
        stack.service("b").unwrap().snapshot()[0].state,
        ReplicaState::Stopped
    );
    assert_eq!(
        stack.service("a").unwrap().snapshot()[0].state,
        ReplicaState::Running
    );
    stack.start_service("b").unwrap();
    settle().await;
    assert_eq!(
        stack.service("b").unwrap().snapshot()[0].state,
        ReplicaState::Running
    );
    assert_eq!(fake.spawns("b-1").len(), 2);
    stack.stop().await;
}

#[tokio::test(start_paused = true)]
async fn restarting_a_dependency_restarts_dependents_that_ask_for_it() {
    let fake = FakeRuntime::new();
    let stack = start(
        "services:\n  db:\n    command: [d]\n  api:\n    command: [a]\n    depends_on: {db: {condition: service_started, restart: true}}\n  web:\n    command: [w]\n    depends_on: [db]\n",
        &fake,
    )
    .await;
    settle().await;
    let report = stack.restart("db").await.unwrap();
    assert_eq!(
        report,
        vec![
            "db-1: restarted without downtime",
            "api: restarting because it depends on db with restart: true",
            "api-1: restarted without downtime",
        ]
    );
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(fake.spawns("api-1").len(), 2);
    assert_eq!(fake.spawns("web-1").len(), 1);
    stack.stop().await;
}
