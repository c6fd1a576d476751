//! `berth export kubernetes`: the stream, the directory with its
//! kustomization, warnings on stderr, the errors and their exit code.

use crate::support::Test;

const STACK: &str = "name: shop
services:
  migrate:
    command: [./bin/migrate]
  api:
    command: [./bin/api]
    expose: [\"8000\"]
    depends_on:
      migrate: {condition: service_completed_successfully}
  web:
    image: nginx:1.27
    ports: [\"8080:80\"]
    volumes: [./nginx.conf:/etc/nginx/nginx.conf:ro]
    container_name: shop-web
x-berth:
  proxy:
    routes:
      - {path: /api, service: api}
      - {path: /, service: web}
";

#[test]
fn native_services_without_an_image_are_listed_with_the_fix_and_exit_2() {
    Test::new()
        .compose(STACK)
        .args(["export", "kubernetes"])
        .run()
        .code(2)
        .stderr_has(
            "these services run natively and have no image to run in Kubernetes: migrate, api",
        )
        .stderr_has("kube: {image: registry.example.com/migrate:1.0}")
        .stderr_has("--image migrate=");
}

#[test]
fn the_stream_goes_to_stdout_and_the_warnings_to_stderr() {
    let run = Test::new()
        .compose(STACK)
        .args(["export", "kubernetes", "--image", "migrate=reg/shop:1", "--image", "api=reg/shop:1"])
        .run()
        .success()
        .stdout_has("kind: Job\n")
        .stdout_has("kind: Ingress\n")
        .stdout_has("image: reg/shop:1")
        .stderr_has("warning: services.web.volumes[0]: the bind mount of ./nginx.conf at /etc/nginx/nginx.conf is left out")
        .stderr_has("warning: services.web.container_name: left out")
        // What only the native runtime cannot do is not said here.
        .stderr_lacks("native runtime");
    assert!(
        run.stdout()
            .starts_with("---\napiVersion: v1\nkind: ServiceAccount\n"),
        "{}",
        run.stdout()
    );
    assert!(!run.stdout().contains("warning"));
    // `-o -` is stdout too, and the output is the same every time.
    let again = Test::new()
        .compose(STACK)
        .args([
            "export",
            "kubernetes",
            "-o",
            "-",
            "--image",
            "migrate=reg/shop:1",
            "--image",
            "api=reg/shop:1",
        ])
        .run()
        .success();
    assert_eq!(again.stdout(), run.stdout());
}

#[test]
fn json_is_one_list() {
    let run = Test::new()
        .compose("services:\n  web:\n    image: nginx\n    expose: [\"80\"]\n")
        .args([
            "export",
            "kubernetes",
            "--format",
            "json",
            "--namespace",
            "shop",
        ])
        .run()
        .success();
    let list = run.json();
    assert_eq!(list["kind"], "List");
    let kinds: Vec<&str> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["Service", "Deployment"]);
    assert!(
        list["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|o| o["metadata"]["namespace"] == "shop")
    );
}

#[test]
fn a_directory_gets_one_file_per_object_and_a_kustomization_and_loses_what_is_gone() {
    let test = Test::new().compose(
        "services:\n  web:\n    image: nginx\n    expose: [\"80\"]\n  worker:\n    image: w\n    environment: {A: \"1\"}\n",
    );
    test.run_args(["export", "kubernetes", "-o", "k8s"])
        .success()
        .stderr_has("wrote 4 objects to k8s (apply with: kubectl apply -k k8s)");
    let dir = test.dir().join("k8s");
    let kustomization = std::fs::read_to_string(dir.join("kustomization.yaml")).unwrap();
    assert!(kustomization.contains(
        "resources:\n  - configmap-worker-env.yaml\n  - service-web.yaml\n  - deployment-web.yaml\n  - deployment-worker.yaml\n"
    ), "{kustomization}");
    let web = std::fs::read_to_string(dir.join("deployment-web.yaml")).unwrap();
    assert!(
        web.starts_with("apiVersion: apps/v1\nkind: Deployment\n"),
        "{web}"
    );
    std::fs::write(dir.join("notes.txt"), "mine").unwrap();
    // worker is removed from the file: its files go, nothing else does.
    std::fs::write(
        test.dir().join("compose.yaml"),
        "services:\n  web:\n    image: nginx\n    expose: [\"80\"]\n",
    )
    .unwrap();
    test.run_args(["export", "kubernetes", "-o", "k8s"])
        .success();
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            "deployment-web.yaml",
            "kustomization.yaml",
            "notes.txt",
            "service-web.yaml"
        ]
    );
}

#[test]
fn a_kustomization_berth_did_not_write_is_left_alone() {
    let test = Test::new()
        .compose("services:\n  web:\n    image: nginx\n")
        .file("k8s/kustomization.yaml", "resources: [mine.yaml]\n");
    test.run_args(["export", "kubernetes", "-o", "k8s"])
        .code(2)
        .stderr_has("was not written by berth");
    let kept = std::fs::read_to_string(test.dir().join("k8s/kustomization.yaml")).unwrap();
    assert_eq!(kept, "resources: [mine.yaml]\n");
}

#[test]
fn unsupported_versions_and_bad_options_are_usage_errors() {
    let test = Test::new().compose("services:\n  web:\n    image: nginx\n");
    test.run_args(["export", "kubernetes", "--kube-version", "1.29"])
        .code(2)
        .stderr_has("supported versions: 1.33, 1.34, 1.35, 1.36, 1.37");
    test.run_args(["export", "kubernetes", "--namespace", "Shop_Prod"])
        .code(2)
        .stderr_has("namespace \"Shop_Prod\" is not valid");
    test.run_args(["export", "kubernetes", "--image", "nope=x:1"])
        .code(2)
        .stderr_has("--image names \"nope\"");
    test.run_args(["export", "kubernetes", "--kube-version", "v1.37.2"])
        .success()
        .stdout_has("kind: Deployment");
}

#[test]
fn a_config_file_that_cannot_be_read_is_an_error() {
    Test::new()
        .compose("services:\n  web:\n    image: nginx\n    configs: [site]\nconfigs:\n  site:\n    file: ./site.conf\n")
        .args(["export", "kubernetes"])
        .run()
        .code(2)
        .stderr_has("site.conf");
}
