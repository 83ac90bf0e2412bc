//! The sandbox helper on its own, for the crate's integration tests and manual debugging; in production the
//! `stratus` binary plays this part (`stratus __sandbox-exec …`).

fn main() {
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    if args.get(1).is_some_and(|a| a == sandbox::HELPER_ARG) {
        sandbox::helper_main(&args[2..]);
    }
    eprintln!("sandbox-helper: internal helper of the sandbox crate; not meant to be run by hand");
    std::process::exit(2);
}
