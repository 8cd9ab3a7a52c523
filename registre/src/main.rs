//! The `registre` binary: parses the command line and runs it on a tokio
//! runtime. Everything else lives in the library (`registre`).

use std::process::ExitCode;

use registre::cli::{run, Cli};

/// Folding the log and decoding snapshots allocate millions of small maps and
/// strings; glibc's malloc was a quarter of a fold's samples (decision 0025).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = Cli::from_process();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
