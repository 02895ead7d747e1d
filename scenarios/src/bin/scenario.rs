//! `scenario FILE…`: plays scenario files with the ordinary runner and prints each transcript
//! (YAML). Exits non-zero when a scenario could not be played or broke an invariant.

use std::process::ExitCode;

fn main() -> ExitCode {
    let files: Vec<String> = std::env::args().skip(1).collect();
    if files.is_empty() {
        eprintln!("usage: scenario FILE.yaml [FILE.yaml …]");
        return ExitCode::from(2);
    }
    let mut ok = true;
    for file in files {
        let transcript = scenarios::run_file(std::path::Path::new(&file));
        println!("# {file}");
        match serde_yaml::to_string(&transcript) {
            Ok(text) => println!("{text}"),
            Err(e) => println!("cannot render the transcript: {e}"),
        }
        if let Some(e) = &transcript.error {
            eprintln!("{file}: {e}");
            ok = false;
        }
        if let Some(v) = &transcript.violation {
            eprintln!("{file}: invariant broken {v}");
            ok = false;
        }
    }
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
