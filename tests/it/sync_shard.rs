//! `sync --shard`: processes running shards of one sync (an Indexed Job's
//! pods, by `JOB_COMPLETION_INDEX`) copy every image exactly once between
//! them, each repository whole in one shard.

use crate::registry_copy::seed;
use crate::support::image::Spec;
use crate::support::registry::{Mode, Registry};
use crate::support::{kopeo_env, tempdir};
use std::collections::{BTreeMap, BTreeSet};

#[test]
fn shards_of_a_sync_copy_every_image_once_with_repositories_whole() {
    let home = tempdir();
    let h = home.path();
    let (src, dst) = (Registry::start(Mode::Plain), Registry::start(Mode::Plain));
    let mut all = BTreeSet::new();
    for r in 0..6 {
        for t in 0..2 {
            let tag = format!("team/r{r}:v{t}");
            let spec = Spec {
                layers: vec![2_000],
                seed: 10 * r + t,
                ..Spec::default()
            };
            seed(&src, h, &tag, &spec);
        }
        all.insert(format!("r{r}"));
    }
    let yaml = h.join("sync.yaml");
    let repos: String = (0..6).map(|r| format!("    team/r{r}: []\n")).collect();
    std::fs::write(&yaml, format!("{}:\n  tls-verify: false\n  images:\n{repos}", src.host)).unwrap();
    let dest = format!("{}/mirror", dst.host);
    // Shards 0 and 1 by INDEX/COUNT, shard 2 by COUNT and the Job's index.
    let mut copied_by: BTreeMap<String, usize> = BTreeMap::new();
    let listed_before = src.requests("GET", "/tags/list");
    for (i, shard, env) in [(0, "0/3", None), (1, "1/3", None), (2, "3", Some("2"))] {
        let report = h.join(format!("report-{i}.json"));
        let mut args = vec![
            "sync",
            "--src",
            "yaml",
            "--dest",
            "docker",
            "--dest-tls-verify=false",
            "--shard",
            shard,
        ];
        let r = report.to_str().unwrap().to_string();
        args.extend_from_slice(&["--report", &r, yaml.to_str().unwrap(), &dest]);
        let vars: Vec<(&str, &str)> = env.map(|e| ("JOB_COMPLETION_INDEX", e)).into_iter().collect();
        let out = kopeo_env(h, &args, None, &vars);
        assert_eq!(out.code, 0, "shard {shard}: {}", out.stderr);
        let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
        for img in v["images"].as_array().unwrap() {
            assert_eq!(img["action"], "copied", "{img}");
            let d = img["destination"].as_str().unwrap();
            assert!(copied_by.insert(d.to_string(), i).is_none(), "{d} copied by two shards");
        }
    }
    assert_eq!(copied_by.len(), 12, "every image once: {copied_by:?}");
    // Each shard listed only its own repositories: the source once between them.
    assert_eq!(src.requests("GET", "/tags/list") - listed_before, 6);
    // A repository's two tags went with the same shard.
    for r in &all {
        let shards: BTreeSet<usize> = copied_by
            .iter()
            .filter(|(d, _)| d.contains(&format!("/mirror/{r}:")))
            .map(|(_, s)| *s)
            .collect();
        assert_eq!(shards.len(), 1, "{r}: {copied_by:?}");
        assert_eq!(dst.tags(h, &format!("mirror/{r}")), ["v0", "v1"]);
    }
    let bad = kopeo_env(
        h,
        &[
            "sync",
            "--src",
            "yaml",
            "--dest",
            "docker",
            "--shard",
            "3",
            yaml.to_str().unwrap(),
            &dest,
        ],
        None,
        &[],
    );
    assert_eq!(bad.code, 1);
    assert!(bad.stderr.contains("invalid shard \\\"3\\\""), "{}", bad.stderr);
}
