//! `bench-run`: the benchmark orchestrator behind `bench/run` (options in bench/USAGE.txt).
//! Everything it does lives in [`genesys_proxy_bench::run`].

fn main() -> std::process::ExitCode {
    genesys_proxy_bench::run::main()
}
