//! Start the test API server standalone, for manual runs of the operator and
//! kubectl: `kopeo-test-apiserver --listen 127.0.0.1:6443 --kubeconfig kc.yaml`.
//! With `--controllers`, a TLS pair and `--node-dir`, it is a small cluster
//! whose node runs pods as local processes (`--node-image NAME=PATH` maps an
//! image to its entrypoint), as the benchmarks of sharded syncs use it.

const USAGE: &str = "usage: kopeo-test-apiserver [--listen 127.0.0.1:PORT] [--kubeconfig FILE] [--token TOKEN] \
[--audit-log-path FILE] [--tls-cert-file FILE --tls-private-key-file FILE] [--controllers] [--rbac] \
[--node-dir DIR [--node-image NAME=PATH]...]";

fn main() {
    let mut opts = kopeo_test_apiserver::Options::default();
    let (mut kubeconfig, mut cert, mut key, mut node_dir) = (None, None, None, None);
    let mut images = vec![];
    let mut args = std::env::args().skip(1);
    let usage = || -> ! {
        eprintln!("{USAGE}");
        std::process::exit(2)
    };
    while let Some(a) = args.next() {
        match a.as_str() {
            "--listen" => opts.listen = args.next().and_then(|s| s.parse().ok()),
            "--kubeconfig" => kubeconfig = args.next(),
            "--token" => opts.token = args.next(),
            "--audit-log-path" => opts.audit_log = args.next().map(Into::into),
            "--tls-cert-file" => cert = args.next(),
            "--tls-private-key-file" => key = args.next(),
            "--controllers" => opts.controllers = true,
            "--rbac" => opts.rbac = true,
            "--node-dir" => node_dir = args.next(),
            "--node-image" => match args.next().as_deref().and_then(|m| m.split_once('=')) {
                Some((name, path)) => images.push((name.to_string(), path.into())),
                None => usage(),
            },
            _ => usage(),
        }
    }
    match (cert, key) {
        (Some(c), Some(k)) => opts.tls = Some((c.into(), k.into())),
        (None, None) => {}
        _ => usage(),
    }
    let server = kopeo_test_apiserver::ApiServer::start(opts);
    let _node = node_dir.map(|dir| {
        server.start_node(kopeo_test_apiserver::node::NodeOptions {
            name: "node-1".into(),
            dir: dir.into(),
            images,
            api: None,
        })
    });
    if let Some(k) = kubeconfig {
        server.write_kubeconfig(std::path::Path::new(&k));
        eprintln!("kubeconfig written to {k}");
    }
    eprintln!("serving on {}", server.url());
    loop {
        std::thread::park();
    }
}
