//! The `kopeo` command: parse arguments and hand off to the library.

fn main() -> std::process::ExitCode {
    kopeo::install_crypto_provider();
    kopeo::cli::main()
}
