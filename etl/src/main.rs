#![forbid(unsafe_code)]
//! Thin entry point; the job lives in the library.

fn main() {
    std::process::exit(quarry_etl::main_with_args(std::env::args_os()));
}
