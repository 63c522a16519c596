//! The `idgate` binary: see `idgate --help`.

fn main() -> std::process::ExitCode {
    idgate::cli::run()
}
