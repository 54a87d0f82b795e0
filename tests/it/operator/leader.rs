//! Several operator processes: one leads, another takes over when it goes.

use crate::support::cluster::*;
use crate::support::{kopeo, tempdir};
use kopeo_test_apiserver::{ApiServer, Options};
use serde_json::json;

#[test]
fn operator_processes_elect_one_leader_and_fail_over_on_sigterm_and_on_a_crash() {
    use crate::support::image::{Spec, build};
    use crate::support::registry::{Mode, Registry};
    use kube::api::{Api, PostParams};
    let home = tempdir();
    let reg = Registry::start(Mode::Plain);
    let img = build(&home.path().join("l"), "x", &Spec::default());
    kopeo(
        home.path(),
        &[
            "copy",
            "-q",
            "--dest-tls-verify=false",
            &img.reference(),
            &reg.image("le/src:1"),
        ],
    )
    .ok();
    let server = ApiServer::start(Options::default());
    let kubeconfig = server.write_kubeconfig(&home.path().join("kubeconfig"));
    runtime().block_on(async {
        let client = cluster(&server).await;
        let mut replicas = vec![
            OperatorProcess::start(home.path(), &kubeconfig, "replica-a"),
            OperatorProcess::start(home.path(), &kubeconfig, "replica-b"),
        ];
        // The plain-HTTP registry needs no Secret, only its TLS setting.
        let insecure = json!({"apiVersion": "kopeo.dev/v1alpha1", "kind": "RegistryCredential", "metadata": {"name": "plain", "namespace": "default"},
            "spec": {"registry": reg.host, "tls": {"insecure": true}}});
        post(&server, "/apis/kopeo.dev/v1alpha1/namespaces/default/registrycredentials", &insecure).await;
        let copies = kopeo_api(&client, "ImageCopy", "imagecopies");
        let image_copy = |name: &str| -> kube::api::DynamicObject {
            serde_json::from_value(json!({"apiVersion": "kopeo.dev/v1alpha1", "kind": "ImageCopy", "metadata": {"name": name},
                "spec": {"source": format!("docker://{}/le/src:1", reg.host), "destination": format!("docker://{}/le/{name}:x", reg.host)}})).unwrap()
        };
        copies.create(&PostParams::default(), &image_copy("first")).await.unwrap();
        if !wait_ready(&copies, "first", 600).await {
            let lease = reqwest::get(format!("{}/apis/coordination.k8s.io/v1/namespaces/default/leases", server.url())).await.unwrap().text().await.unwrap();
            let logs: Vec<String> = replicas.iter().map(|r| std::fs::read_to_string(&r.log).unwrap_or_default()).collect();
            panic!("the leader did not copy the image: lease {lease}\nimagecopy {:?}\nlogs {logs:#?}", copies.get("first").await.unwrap().data);
        }
        let leases: Api<k8s_openapi::api::coordination::v1::Lease> = Api::namespaced(client.clone(), "default");
        let holder = leases.get("kopeo-leader").await.unwrap().spec.unwrap().holder_identity.unwrap();
        let events: Api<k8s_openapi::api::events::v1::Event> = Api::namespaced(client.clone(), "default");
        for e in events.list(&Default::default()).await.unwrap().items {
            assert_eq!(e.reporting_instance.as_deref(), Some(holder.as_str()), "only the leader acts");
        }
        // Health and metrics endpoints of both processes.
        for r in &replicas {
            assert_eq!(r.get("/healthz").await.0, 200, "{}", r.name);
            assert_eq!(r.get("/readyz").await.0, 200, "{}", r.name);
            let (_, m) = r.get("/metrics").await;
            let expect = if r.name == holder { "kopeo_leader 1" } else { "kopeo_leader 0" };
            // Whole lines: the HELP text also reads "kopeo_leader 1 when …".
            assert!(m.lines().any(|l| l == expect), "{}: {m}", r.name);
            if r.name == holder {
                assert!(m.contains("kopeo_runs_total{kind=\"ImageCopy\",result=\"copied\"} 1"), "{m}");
            }
        }

        // SIGTERM to the leader: it stops cleanly and releases the Lease; the
        // other replica takes over and handles new resources.
        let leader = replicas.iter().position(|r| r.name == holder).unwrap();
        let leader = replicas.remove(leader);
        let log = leader.log.clone();
        let stopped = std::time::Instant::now();
        assert_eq!(leader.terminate(), Some(0), "the operator exits 0 on SIGTERM");
        let log = std::fs::read_to_string(log).unwrap();
        assert!(log.contains("released the lease"), "{log}");
        copies.create(&PostParams::default(), &image_copy("second")).await.unwrap();
        assert!(wait_ready(&copies, "second", 1200).await, "the standby took over: {:?}", copies.get("second").await.unwrap().data);
        let new_holder = leases.get("kopeo-leader").await.unwrap().spec.unwrap().holder_identity.unwrap();
        assert_eq!(new_holder, replicas[0].name);
        eprintln!("failover: the standby copied {:?} after the leader's SIGTERM", stopped.elapsed());
        assert_eq!(replicas[0].leading().await, Some(true));

        // A leader that dies without a word (SIGKILL) keeps the Lease until it
        // expires (15 s); then a standby takes over.
        replicas.push(OperatorProcess::start(home.path(), &kubeconfig, "replica-c"));
        // Kill the leader once the new replica stands by (its metrics say so).
        for _ in 0..250 {
            if replicas[1].leading().await == Some(false) {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        assert_eq!(replicas[1].leading().await, Some(false), "replica-c stands by");
        let mut dead = replicas.remove(0);
        dead.child.kill().unwrap();
        dead.child.wait().unwrap();
        let killed = std::time::Instant::now();
        copies.create(&PostParams::default(), &image_copy("third")).await.unwrap();
        assert!(wait_ready(&copies, "third", 1200).await, "the standby took over from a dead leader");
        let holder = leases.get("kopeo-leader").await.unwrap().spec.unwrap().holder_identity.unwrap();
        assert_eq!(holder, "replica-c");
        eprintln!("failover: the standby copied {:?} after the leader was killed", killed.elapsed());
    });
}
