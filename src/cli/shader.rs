//! `srgpt shader`: the assembled WGSL of a shader variant, as the GPU receives it.

use std::process::ExitCode;

use anyhow::Result;

use super::args::bad_input;

/// The variants of a kernel file or entry point that have the given defines; prints the
/// first one's WGSL (saying how many matched), or all their names with `--list`.
pub fn shader(name: &str, defines: &[(String, String)], list: bool) -> Result<ExitCode> {
    let all = srgpt::kernels::all_variants();
    let named: Vec<_> = all.iter().filter(|v| v.file.trim_end_matches(".wgsl") == name || v.entry == name).collect();
    if named.is_empty() {
        let mut names: Vec<&str> = all.iter().map(|v| v.file.trim_end_matches(".wgsl")).collect();
        names.dedup();
        return Err(bad_input(format!("no shader or entry point '{name}' (shaders: {})", names.join(", "))));
    }
    let chosen: Vec<_> = named.into_iter().filter(|v| defines.iter().all(|(k, val)| v.defines.get(k) == Some(val))).collect();
    let Some(first) = chosen.first() else {
        let given: Vec<String> = defines.iter().map(|(k, v)| format!("{k}={v}")).collect();
        return Err(bad_input(format!("no variant of '{name}' has {} (--list shows them)", given.join(" "))));
    };
    if list {
        for v in &chosen {
            println!("{}", v.key());
        }
        return Ok(ExitCode::SUCCESS);
    }
    println!("// {}", first.key());
    if chosen.len() > 1 {
        println!("// the first of {} variants that match; --list names them, --define KEY=VALUE narrows", chosen.len());
    }
    print!("{}", first.source()?);
    Ok(ExitCode::SUCCESS)
}
