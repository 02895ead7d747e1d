//! The manual pages of the `relay` command (roff, through `clap_mangen`): `relay.1`, and one
//! page per command and sub-command, named by its path (`relay-ctl.1`, `relay-ctl-lease.1`…),
//! from the same definitions `--help` prints.

use std::path::Path;

use anyhow::Context;

/// Writes the pages of `command` and every sub-command under it to `dir` (made if missing);
/// returns how many were written.
pub fn write_pages(command: clap::Command, dir: &Path) -> anyhow::Result<usize> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot make {}", dir.display()))?;
    let mut command = command;
    command.build();
    write_tree(&command, command.get_name(), dir)
}

fn write_tree(command: &clap::Command, name: &str, dir: &Path) -> anyhow::Result<usize> {
    let page = command.clone().name(name.to_owned());
    let mut roff = Vec::new();
    clap_mangen::Man::new(page)
        .render(&mut roff)
        .with_context(|| format!("cannot render the page of {name}"))?;
    let path = dir.join(format!("{name}.1"));
    std::fs::write(&path, roff).with_context(|| format!("cannot write {}", path.display()))?;
    let mut written = 1;
    for sub in command.get_subcommands().filter(|s| s.get_name() != "help") {
        written += write_tree(sub, &format!("{name}-{}", sub.get_name()), dir)?;
    }
    Ok(written)
}
