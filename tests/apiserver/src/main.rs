//! Start the test API server standalone, for manual runs of the operator and
//! kubectl: `kopeo-test-apiserver --listen 127.0.0.1:6443 --kubeconfig kc.yaml`.

fn main() {
    let mut opts = kopeo_test_apiserver::Options::default();
    let mut kubeconfig = None;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--listen" => opts.listen = args.next().and_then(|s| s.parse().ok()),
            "--kubeconfig" => kubeconfig = args.next(),
            "--token" => opts.token = args.next(),
            "--audit-log-path" => opts.audit_log = args.next().map(Into::into),
            _ => {
                eprintln!(
                    "usage: kopeo-test-apiserver [--listen 127.0.0.1:PORT] [--kubeconfig FILE] [--token TOKEN] [--audit-log-path FILE]"
                );
                std::process::exit(2);
            }
        }
    }
    let server = kopeo_test_apiserver::ApiServer::start(opts);
    if let Some(k) = kubeconfig {
        server.write_kubeconfig(std::path::Path::new(&k));
        eprintln!("kubeconfig written to {k}");
    }
    eprintln!("serving on {}", server.url());
    loop {
        std::thread::park();
    }
}
