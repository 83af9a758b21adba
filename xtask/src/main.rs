//! Developer tasks for toxscore: `cargo xtask <task>`.
//!
//! One module per task; few dependencies, so building xtask stays cheap.

mod bench;
mod bench_gpu;
mod emulator;
mod migrate;
mod python;
mod test;

use anyhow::{Result, bail};

const USAGE: &str = "usage: cargo xtask <task> [args]

tasks:
  bench      whole-process benchmark: toxcli against PyTorch Detoxify (see `cargo xtask bench --help`)
  test       start the BigQuery emulator, run the whole test suite, stop the emulator, run the Python tests
  migrate    toxcli migrate: apply the schema migrations and de-duplicate texts in a store (see `cargo xtask migrate --help`)
";

fn main() -> Result<()> {
    let mut args = std::env::args().skip(1);
    let task = args.next();
    let rest: Vec<String> = args.collect();
    match task.as_deref() {
        Some("bench") => bench::run(&rest),
        Some("test") => test::run(&rest),
        Some("migrate") => migrate::run(&rest),
        Some("-h" | "--help") | None => {
            print!("{USAGE}");
            Ok(())
        }
        Some(other) => bail!("unknown task {other:?}\n\n{USAGE}"),
    }
}
