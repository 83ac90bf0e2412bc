//! The sandbox helper on its own, for the crate's integration tests and manual debugging; in production the
//! `stratus` binary plays this part (`stratus __sandbox-exec …`).
//!
//! `sandbox-helper __hold <plan.json>` (tests only) starts the instance a plan file describes, prints the
//! init's pid and sleeps, standing for a server that gets killed while its instances run.

fn main() {
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    if args.get(1).is_some_and(|a| a == sandbox::HELPER_ARG) {
        sandbox::helper_main(&args[2..]);
    }
    if args.get(1).is_some_and(|a| a == "__hold")
        && let Some(path) = args.get(2)
    {
        let plan = std::fs::read(path)
            .map_err(|e| e.to_string())
            .and_then(|b| sandbox::Plan::from_bytes(&b).map_err(|e| e.to_string()));
        let child = plan.and_then(|p| {
            sandbox::spawn(&p, sandbox::SpawnIo::default(), &sandbox::Helper::default())
                .map_err(|e| e.to_string())
        });
        match child {
            Ok(child) => {
                println!("{}", child.init_pid());
                loop {
                    std::thread::sleep(std::time::Duration::from_secs(3600));
                }
            }
            Err(e) => {
                eprintln!("sandbox-helper __hold: {e}");
                std::process::exit(1);
            }
        }
    }
    eprintln!("sandbox-helper: internal helper of the sandbox crate; not meant to be run by hand");
    std::process::exit(2);
}
