//! A real `kube::runtime::Controller` against the test API server: started
//! before its CRD exists, it recovers; it adds a finalizer, writes status
//! (Ready condition, observedGeneration) and Events, follows a spec change,
//! and lets a deletion finish by removing its finalizer.

use futures::StreamExt;
use k8s_openapi::api::events::v1::Event as K8sEvent;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kopeo_test_apiserver::{ApiServer, Options};
use kube::api::{Patch, PatchParams, PostParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::runtime::finalizer::{Event as Finalizer, finalizer};
use kube::runtime::watcher;
use kube::{Api, Client, CustomResource, CustomResourceExt, Resource, ResourceExt};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[derive(CustomResource, Deserialize, Serialize, Clone, Debug, JsonSchema)]
#[kube(
    group = "example.dev",
    version = "v1",
    kind = "Gadget",
    namespaced,
    status = "GadgetStatus"
)]
pub struct GadgetSpec {
    size: i64,
}

#[derive(Deserialize, Serialize, Clone, Debug, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct GadgetStatus {
    observed_generation: Option<i64>,
    conditions: Vec<serde_json::Value>,
}

struct Ctx {
    client: Client,
    recorder: Recorder,
    cleaned: Mutex<Vec<String>>,
}

#[derive(Debug)]
enum Error {
    Finalizer(Box<kube::runtime::finalizer::Error<kube::Error>>),
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Error::Finalizer(e) => write!(f, "finalizer: {e}"),
        }
    }
}
impl std::error::Error for Error {}

async fn reconcile(g: Arc<Gadget>, ctx: Arc<Ctx>) -> Result<Action, Error> {
    let api: Api<Gadget> = Api::namespaced(ctx.client.clone(), &g.namespace().unwrap_or_default());
    finalizer(&api, "example.dev/cleanup", g, |ev| async {
        match ev {
            Finalizer::Apply(g) => {
                let generation = g.meta().generation.unwrap_or(0);
                let status = serde_json::json!({"status": {"observedGeneration": generation, "conditions": [
                    {"type": "Ready", "status": "True", "reason": "Reconciled", "message": format!("size {}", g.spec.size), "observedGeneration": generation}]}});
                api.patch_status(&g.name_any(), &PatchParams::default(), &Patch::Merge(&status)).await?;
                let ev = Event { type_: EventType::Normal, reason: "Reconciled".into(), note: Some(format!("generation {generation}")), action: "Reconcile".into(), secondary: None };
                ctx.recorder.publish(&ev, &g.object_ref(&())).await?;
                Ok(Action::requeue(Duration::from_secs(300)))
            }
            Finalizer::Cleanup(g) => {
                ctx.cleaned.lock().unwrap().push(g.name_any());
                Ok(Action::await_change())
            }
        }
    })
    .await
    .map_err(|e| Error::Finalizer(Box::new(e)))
}

fn error_policy(_: Arc<Gadget>, _: &Error, _: Arc<Ctx>) -> Action {
    Action::requeue(Duration::from_millis(200))
}

async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    for _ in 0..200 {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("timed out waiting for {what}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_controller_reconciles_through_create_change_and_delete() {
    let server = ApiServer::start(Options::default());
    let config = kube::Config::new(server.url().parse().unwrap());
    let client = Client::try_from(config).unwrap();
    let gadgets: Api<Gadget> = Api::namespaced(client.clone(), "default");
    let ctx = Arc::new(Ctx {
        client: client.clone(),
        recorder: Recorder::new(
            client.clone(),
            Reporter {
                controller: "gadget-controller".into(),
                instance: Some("test".into()),
            },
        ),
        cleaned: Mutex::new(vec![]),
    });
    // Started before the CRD exists: its watch gets 404s until then.
    let controller = Controller::new(gadgets.clone(), watcher::Config::default())
        .run(reconcile, error_policy, ctx.clone())
        .for_each(|_| async {});
    let handle = tokio::spawn(controller);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    crds.create(&PostParams::default(), &Gadget::crd()).await.unwrap();
    gadgets
        .create(&PostParams::default(), &Gadget::new("g1", GadgetSpec { size: 1 }))
        .await
        .unwrap();

    let ready_at = |generation: i64| {
        let gadgets = gadgets.clone();
        move || {
            let gadgets = gadgets.clone();
            async move {
                let Ok(g) = gadgets.get("g1").await else { return false };
                let s = g.status.unwrap_or_default();
                s.observed_generation == Some(generation)
                    && s.conditions
                        .iter()
                        .any(|c| c["type"] == "Ready" && c["status"] == "True" && c["observedGeneration"] == generation)
            }
        }
    };
    eventually("Ready at generation 1", ready_at(1)).await;
    let g = gadgets.get("g1").await.unwrap();
    assert_eq!(g.finalizers(), ["example.dev/cleanup"]);

    gadgets
        .patch(
            "g1",
            &PatchParams::default(),
            &Patch::Merge(serde_json::json!({"spec": {"size": 2}})),
        )
        .await
        .unwrap();
    eventually("Ready at generation 2", ready_at(2)).await;

    let events: Api<K8sEvent> = Api::namespaced(client.clone(), "default");
    let list = events.list(&Default::default()).await.unwrap();
    assert!(list.items.iter().any(|e| e.reason.as_deref() == Some("Reconciled")
        && e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some("g1")));

    gadgets.delete("g1", &Default::default()).await.unwrap();
    eventually("deletion finished", || {
        let gadgets = gadgets.clone();
        async move { gadgets.get_opt("g1").await.unwrap().is_none() }
    })
    .await;
    assert_eq!(*ctx.cleaned.lock().unwrap(), ["g1"]);
    handle.abort();
}
