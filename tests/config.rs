//! `berth config`: discovery, merging, environment, profiles, output, errors.

use crate::support::{Test, shared_dir};

#[test]
fn discovers_compose_yaml_and_its_override_from_a_subdirectory() {
    Test::new()
        .compose("services:\n  web:\n    command: [a]\n")
        .file(
            "compose.override.yaml",
            "services:\n  web:\n    environment: {X: from-override}\n",
        )
        .cwd("deep/er")
        .args(["config", "--format", "json"])
        .run()
        .success()
        .stdout_has("\"X\": \"from-override\"");
}

#[test]
fn files_merge_in_order_with_reset_and_override() {
    let run = Test::new()
        .file("a.yaml", "services:\n  web:\n    command: [one]\n    ports: [\"80:80\"]\n    environment: [A=1, B=2]\n")
        .file(
            "b.yaml",
            "services:\n  web:\n    command: [two]\n    ports: !reset []\n    environment: {B: 3}\n",
        )
        .args(["-f", "a.yaml", "-f", "b.yaml", "config", "--format", "json"])
        .run()
        .success();
    let web = &run.json()["services"]["web"];
    assert_eq!(web["command"], serde_json::json!(["two"]));
    assert!(web.get("ports").is_none());
    assert_eq!(web["environment"], serde_json::json!({"A": "1", "B": "3"}));
}

#[test]
fn shell_environment_wins_over_dot_env_and_unset_variables_warn_once() {
    Test::new()
        .compose("services:\n  web:\n    image: \"app:${TAG}\"\n    environment: [\"A=${A}\", \"M=${MISSING}\", \"N=${MISSING}\"]\n")
        .file(".env", "TAG=from-dotenv\nA=from-dotenv\n")
        .env("A", "from-shell")
        .args(["config", "--format", "json"])
        .run()
        .success()
        .stdout_has("\"image\": \"app:from-dotenv\"")
        .stdout_has("\"A\": \"from-shell\"")
        .stderr_has("the MISSING variable is not set");
}

#[test]
fn env_file_flag_replaces_dot_env() {
    Test::new()
        .compose("services:\n  web:\n    image: \"app:${TAG}\"\n")
        .file(".env", "TAG=dotenv\n")
        .file("prod.env", "TAG=prod\n")
        .args(["--env-file", "prod.env", "config", "--format", "json"])
        .run()
        .success()
        .stdout_has("app:prod");
}

#[test]
fn required_variable_failure_shows_the_message_and_place() {
    Test::new()
        .compose("services:\n  db:\n    environment:\n      PASSWORD: ${DB_PASSWORD:?set DB_PASSWORD in .env}\n")
        .args(["config"])
        .run()
        .code(2)
        .stderr_has("required variable DB_PASSWORD is missing a value: set DB_PASSWORD in .env")
        .stderr_has("compose.yaml:4:17");
}

#[test]
fn profiles_hide_services_unless_enabled_or_named() {
    let t = Test::new().compose(
        "services:\n  web:\n    command: [a]\n  debug:\n    command: [b]\n    profiles: [dev]\n",
    );
    t.args(["config", "--services"])
        .run()
        .success()
        .stdout_is("web\n");
    let t = Test::new().compose(
        "services:\n  web:\n    command: [a]\n  debug:\n    command: [b]\n    profiles: [dev]\n",
    );
    t.args(["--profile", "dev", "config", "--services"])
        .run()
        .success()
        .stdout_is("web\ndebug\n");
    let t = Test::new().compose(
        "services:\n  web:\n    command: [a]\n  debug:\n    command: [b]\n    profiles: [dev]\n",
    );
    t.args(["config", "--services", "debug"])
        .run()
        .success()
        .stdout_has("debug\n");
}

#[test]
fn project_name_comes_from_flag_file_or_directory() {
    Test::new()
        .compose("name: from-file\nservices:\n  a:\n    command: [x]\n")
        .args(["-p", "from-flag", "config", "--format", "json"])
        .run()
        .success()
        .stdout_has("\"name\": \"from-flag\"");
    Test::new()
        .compose("services:\n  a:\n    command: [x]\n")
        .args(["-p", "Bad Name", "config"])
        .run()
        .code(2)
        .stderr_has("invalid project name \"Bad Name\"");
}

#[test]
fn bad_configuration_exits_with_clear_errors() {
    // Every error at once, each with file:line:column and a caret.
    Test::new()
        .compose(
            "services:\n  web:\n    comand: x\n    depends_on: [dbb]\n  db:\n    command: y\n    ports: [\"80:80\"]\n  db2:\n    command: z\n    ports: [\"80:81\"]\n",
        )
        .args(["config"])
        .run()
        .code(2)
        .stderr_has("services.web: unknown key `comand`")
        .stderr_has("compose.yaml:3:5")
        .stderr_has("did you mean `command`?")
        .stderr_has("service web depends on undefined service \"dbb\"")
        .stderr_has("host port 80/tcp is published by both db (ports[0]) and db2 (ports[0])")
        .stderr_has("3 errors found");
}

#[test]
fn cycles_print_their_whole_path() {
    Test::new()
        .compose("services:\n  a:\n    command: [x]\n    depends_on: [b]\n  b:\n    command: [x]\n    depends_on: [c]\n  c:\n    command: [x]\n    depends_on: [a]\n")
        .args(["config", "-q"])
        .run()
        .code(2)
        .stderr_has("dependency cycle detected: a -> b -> c -> a");
}

#[test]
fn service_healthy_needs_a_health_check() {
    Test::new()
        .compose("services:\n  api:\n    command: [x]\n    depends_on: {db: {condition: service_healthy}}\n  db:\n    command: [y]\n")
        .args(["config", "-q"])
        .run()
        .code(2)
        .stderr_has("service api waits for db to be healthy, but db has no healthcheck");
}

#[test]
fn routes_to_unknown_services_are_errors() {
    Test::new()
        .compose("services:\n  api:\n    command: [x]\n    expose: [\"80\"]\nx-berth:\n  proxy:\n    routes:\n      - {path: /api, service: apii}\n")
        .args(["config", "-q"])
        .run()
        .code(2)
        .stderr_has("routes to undefined service \"apii\"")
        .stderr_has("did you mean `api`?");
}

#[test]
fn container_network_mode_is_an_error_and_a_device_a_warning() {
    Test::new()
        .compose("services:\n  a:\n    command: [x]\n    network_mode: \"container:abc\"\n  b:\n    command: [y]\n    devices: [\"/dev/fuse\"]\n")
        .args(["config", "-q"])
        .run()
        .code(2)
        .stderr_has("joins another container's network")
        .stderr_has("devices is not honoured by the native runtime");
}

#[test]
fn json_and_yaml_output_agree() {
    let t = Test::new().compose(
        "services:\n  web:\n    command: serve --port 80\n    ports: [\"127.0.0.1:8080:80\"]\n",
    );
    let json = t
        .args(["config", "--format", "json"])
        .run()
        .success()
        .json();
    let t = Test::new().compose(
        "services:\n  web:\n    command: serve --port 80\n    ports: [\"127.0.0.1:8080:80\"]\n",
    );
    let yaml = t.args(["config"]).run().success().stdout();
    assert_eq!(
        json["services"]["web"]["command"],
        serde_json::json!(["serve", "--port", "80"])
    );
    assert_eq!(json["services"]["web"]["ports"][0]["host_ip"], "127.0.0.1");
    assert!(
        yaml.lines()
            .any(|l| l.trim().starts_with("host_ip:") && l.contains("127.0.0.1")),
        "{yaml}"
    );
    assert!(yaml.contains("published: \"8080\""), "{yaml}");
}

#[test]
fn secrets_values_are_never_printed() {
    let run = Test::new()
        .compose("services:\n  a:\n    command: [x]\n    secrets: [token]\nsecrets:\n  token:\n    environment: API_TOKEN\n")
        .env("API_TOKEN", "s3cr3t-value")
        .args(["config"])
        .run()
        .success();
    assert!(!run.stdout().contains("s3cr3t-value"), "{}", run.stdout());
}

#[test]
fn reads_standard_input_with_dash() {
    Test::new()
        .stdin("services:\n  piped:\n    command: [x]\n")
        .args(["-f", "-", "config", "--services"])
        .run()
        .success()
        .stdout_is("piped\n");
}

#[test]
fn missing_file_is_a_clear_error() {
    Test::new()
        .args(["-f", "nope.yaml", "config"])
        .run()
        .code(2)
        .stderr_has("cannot read")
        .stderr_has("nope.yaml: no such file");
    Test::new()
        .args(["config"])
        .run()
        .code(2)
        .stderr_has("no compose file found");
}

#[test]
fn broken_pipe_on_stdout_is_success() {
    use std::process::Stdio;
    let t = Test::new().compose(&{
        let mut s = String::from("services:\n");
        for i in 0..2000 {
            s.push_str(&format!("  s{i}:\n    command: [x]\n"));
        }
        s
    });
    let mut child = t
        .command()
        .args(["config"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    drop(child.stdout.take()); // the reader goes away at once
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(0));
}

#[test]
fn every_shared_stack_config_exits_zero() {
    let stacks = shared_dir().join("stacks");
    for entry in std::fs::read_dir(&stacks).unwrap() {
        let dir = entry.unwrap().path();
        let run = Test::new()
            .args(["--project-directory", dir.to_str().unwrap(), "config", "-q"])
            .run();
        assert_eq!(
            run.output.status.code(),
            Some(0),
            "{}:\n{}",
            dir.display(),
            run.stderr()
        );
    }
}

#[test]
fn extends_in_the_same_file_and_from_another_file() {
    let run = Test::new()
        .file(
            "common/base.yaml",
            "services:\n  base:\n    command: [serve]\n    environment: {LEVEL: info, FROM: base}\n    env_file: base.env\n    volumes: [\"./data:/data\"]\n",
        )
        .file("common/base.env", "SECRET=from-base-env\n")
        .compose(
            "services:\n  web:\n    extends: {file: common/base.yaml, service: base}\n    environment: {LEVEL: debug}\n  worker:\n    extends: web\n    command: [work]\n",
        )
        .args(["config", "--format", "json"])
        .run()
        .success();
    let json = run.json();
    let web = &json["services"]["web"];
    assert_eq!(web["command"], serde_json::json!(["serve"]));
    assert_eq!(web["environment"]["LEVEL"], "debug");
    assert_eq!(web["environment"]["FROM"], "base");
    assert_eq!(web["environment"]["SECRET"], "from-base-env");
    // Relative paths of the base resolve against the base's own directory.
    let source = web["volumes"][0]["source"].as_str().unwrap();
    assert!(source.ends_with("/common/data"), "{source}");
    let worker = &json["services"]["worker"];
    assert_eq!(worker["command"], serde_json::json!(["work"]));
    assert_eq!(worker["environment"]["LEVEL"], "debug");
    assert!(worker.get("extends").is_none());
}

#[test]
fn extends_cycles_and_unknown_bases_are_errors() {
    Test::new()
        .compose("services:\n  a:\n    extends: b\n  b:\n    extends: a\n")
        .args(["config", "-q"])
        .run()
        .code(2)
        .stderr_has("circular reference with extends");
    Test::new()
        .compose("services:\n  a:\n    extends: nope\n    command: [x]\n")
        .args(["config", "-q"])
        .run()
        .code(2)
        .stderr_has("services.a.extends: service \"nope\" is not defined in this file");
}

#[test]
fn include_brings_another_project_with_its_own_directory_and_env() {
    let run = Test::new()
        .file("db/compose.yaml", "services:\n  db:\n    command: [\"postgres\", \"-p\", \"${DB_PORT}\"]\n    volumes: [\"./pgdata:/data\"]\n")
        .file("db/.env", "DB_PORT=5433\n")
        .compose("include:\n  - db/compose.yaml\nservices:\n  api:\n    command: [api]\n    depends_on: [db]\n")
        .args(["config", "--format", "json"])
        .run()
        .success();
    let json = run.json();
    assert_eq!(
        json["services"]["db"]["command"],
        serde_json::json!(["postgres", "-p", "5433"])
    );
    assert!(
        json["services"]["db"]["volumes"][0]["source"]
            .as_str()
            .unwrap()
            .ends_with("/db/pgdata")
    );
    // A conflicting definition is an error.
    Test::new()
        .file("other.yaml", "services:\n  api:\n    command: [other]\n")
        .compose("include: [other.yaml]\nservices:\n  api:\n    command: [mine]\n")
        .args(["config", "-q"])
        .run()
        .code(2)
        .stderr_has(
            "services.api conflicts with the services of the same name that `include` imports",
        );
}

#[test]
fn env_file_long_form_optional_and_raw() {
    let run = Test::new()
        .file("raw.env", "QUOTED=\"kept as is\"\nPLAIN=${NOT_EXPANDED}\n")
        .compose(
            "services:\n  a:\n    command: [x]\n    env_file:\n      - path: missing.env\n        required: false\n      - path: raw.env\n        format: raw\n",
        )
        .args(["config", "--format", "json"])
        .run()
        .success();
    let env = &run.json()["services"]["a"]["environment"];
    assert_eq!(env["QUOTED"], "\"kept as is\"");
    assert_eq!(env["PLAIN"], "${NOT_EXPANDED}");
    Test::new()
        .compose("services:\n  a:\n    command: [x]\n    env_file: [missing.env]\n")
        .args(["config", "-q"])
        .run()
        .code(2)
        .stderr_has("services.a.env_file: cannot read")
        .stderr_has("missing.env: no such file");
}

#[test]
fn yaml_anchors_and_merge_keys_work_across_services() {
    let run = Test::new()
        .compose(
            "x-defaults: &defaults\n  restart: always\n  environment: {TZ: UTC}\nservices:\n  a:\n    <<: *defaults\n    command: [a]\n  b:\n    <<: *defaults\n    command: [b]\n    restart: \"no\"\n",
        )
        .args(["config", "--format", "json"])
        .run()
        .success();
    let json = run.json();
    assert_eq!(json["services"]["a"]["restart"], "always");
    assert_eq!(json["services"]["b"]["restart"], "no");
    assert_eq!(json["services"]["b"]["environment"]["TZ"], "UTC");
    assert!(json.get("x-defaults").is_some());
}

#[test]
fn values_up_would_reject_are_rejected_by_config_with_their_line() {
    // Regression: config accepted these and `up` refused them without a place.
    let run = Test::new()
        .compose(
            "services:\n  w:\n    command: [sleep, \"1\"]\n    stop_signal: SIGFOO\n    logging: {options: {max-size: lots, max-file: \"0\"}}\n",
        )
        .args(["config", "-q"])
        .run()
        .code(2);
    run.stderr_has("services.w.stop_signal: \"SIGFOO\" is not a signal\n --> compose.yaml:4:18")
        .stderr_has("services.w.logging.options.max-size: \"lots\" is not a size\n --> compose.yaml:5:35")
        .stderr_has("services.w.logging.options.max-file: \"0\" is not a positive count\n --> compose.yaml:5:51");
}

#[test]
fn typed_fields_are_checked_at_their_line_by_config_and_up_alike() {
    // Regression: a bad expose range was dropped silently by `up` and
    // accepted by `config`.
    let file = "services:\n  w:\n    command: [sleep, \"1\"]\n    expose: [\"9000-8000\"]\n    restart: sometimes\n  h:\n    command: [sleep, \"1\"]\n    healthcheck: {test: [curl, x]}\n  p:\n    command: [sleep, \"1\"]\n    ports: [{target: 80, published: \"90-80\"}]\n";
    for verb in [&["config", "-q"][..], &["up"][..]] {
        let run = Test::new()
            .compose(file)
            .args(verb.iter().copied())
            .run()
            .code(2);
        run.stderr_has("services.w.expose[0]: \"9000-8000\" is not a port\n --> compose.yaml:4:14")
            .stderr_has("services.w.restart: \"sometimes\" is not a restart policy\n --> compose.yaml:5:14")
            .stderr_has("services.h.healthcheck.test: a test list starts with NONE, CMD or CMD-SHELL, not \"curl\"")
            .stderr_has("services.p.ports[0].published: published port \"90-80\" is not a port or range")
            .stderr_has("compose.yaml:11:");
    }
}
