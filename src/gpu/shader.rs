//! WGSL assembly: the shader files are embedded in the binary and composed by a small
//! preprocessor, then validated by naga. `shaders/README.md` explains it with examples;
//! `srgpt shader NAME` prints what it makes.
//!
//! Directives, each on a line of its own:
//! - `#include "lib/x.wgsl"` inserts a helper file once per module.
//! - `#if NAME` / `#if !NAME` / `#else` / `#endif` keep lines by a boolean define; a NAME the
//!   variant does not define is an error, so a misspelt define cannot drop code unnoticed.
//! - `#tensor NAME BINDING read|read_write STORE` declares a storage tensor by instantiating
//!   `lib/tensor_<store>.wgsl`, giving `NAME_get`, `NAME_get2` and, when writable, `NAME_set2`
//!   (plus `NAME_set` for f32). STORE is f32, bf16, bf16_sr or f16.
//! - `#tensor4 NAME BINDING STORE` declares a read-only view of a tensor's buffer four
//!   elements to a load (`lib/tensor4_<store>.wgsl`), giving `NAME_get4`.
//!
//! And one substitution: `{{NAME}}` anywhere is replaced by the define's value (an undefined
//! one is an error). The tensor templates are expanded with their own defines: `TENSOR`,
//! `BINDING`, `ACCESS`, `ROUND` and the flag `WRITABLE`.

use std::collections::{BTreeMap, BTreeSet};

use crate::precision::Store;
use anyhow::{anyhow, bail, Result};

/// Every WGSL file of `shaders/`, by path relative to it.
pub const SHADER_FILES: &[(&str, &str)] = &[
    ("lib/gelu.wgsl", include_str!("../../shaders/lib/gelu.wgsl")),
    ("lib/pcg.wgsl", include_str!("../../shaders/lib/pcg.wgsl")),
    ("lib/round.wgsl", include_str!("../../shaders/lib/round.wgsl")),
    ("lib/rows.wgsl", include_str!("../../shaders/lib/rows.wgsl")),
    ("lib/workgroup.wgsl", include_str!("../../shaders/lib/workgroup.wgsl")),
    ("lib/tensor_f32.wgsl", include_str!("../../shaders/lib/tensor_f32.wgsl")),
    ("lib/tensor_bf16.wgsl", include_str!("../../shaders/lib/tensor_bf16.wgsl")),
    ("lib/tensor_f16.wgsl", include_str!("../../shaders/lib/tensor_f16.wgsl")),
    ("lib/tensor4_f32.wgsl", include_str!("../../shaders/lib/tensor4_f32.wgsl")),
    ("lib/tensor4_bf16.wgsl", include_str!("../../shaders/lib/tensor4_bf16.wgsl")),
    ("lib/tensor4_f16.wgsl", include_str!("../../shaders/lib/tensor4_f16.wgsl")),
    ("lib/subgroups.wgsl", include_str!("../../shaders/lib/subgroups.wgsl")),
    ("adamw.wgsl", include_str!("../../shaders/adamw.wgsl")),
    ("convert.wgsl", include_str!("../../shaders/convert.wgsl")),
    ("cross_entropy.wgsl", include_str!("../../shaders/cross_entropy.wgsl")),
    ("embedding.wgsl", include_str!("../../shaders/embedding.wgsl")),
    ("gelu.wgsl", include_str!("../../shaders/gelu.wgsl")),
    ("layernorm.wgsl", include_str!("../../shaders/layernorm.wgsl")),
    ("matmul.wgsl", include_str!("../../shaders/matmul.wgsl")),
    ("reduce.wgsl", include_str!("../../shaders/reduce.wgsl")),
    ("softmax.wgsl", include_str!("../../shaders/softmax.wgsl")),
    ("zero.wgsl", include_str!("../../shaders/zero.wgsl")),
];

fn shader_file(path: &str) -> Result<&'static str> {
    SHADER_FILES.iter().find(|(p, _)| *p == path).map(|(_, src)| *src).ok_or_else(|| anyhow!("no shader file {path}"))
}

/// One compiled variant: a file, one entry point, and the defines it is assembled with.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ShaderSpec {
    pub file: &'static str,
    pub entry: &'static str,
    pub defines: BTreeMap<String, String>,
    /// the defines that only shape the work (tile sizes), left out of brief descriptions
    pub shape_defines: BTreeSet<&'static str>,
}

impl ShaderSpec {
    pub fn new(file: &'static str, entry: &'static str) -> ShaderSpec {
        ShaderSpec { file, entry, defines: BTreeMap::new(), shape_defines: BTreeSet::new() }
    }

    /// A define that only shapes the work (a tile size): part of the variant, but left out
    /// of the brief descriptions in profiles and messages.
    pub fn shape_define(mut self, name: &'static str, value: impl ToString) -> ShaderSpec {
        self.shape_defines.insert(name);
        self.define(name, value)
    }

    pub fn define(mut self, name: &str, value: impl ToString) -> ShaderSpec {
        self.defines.insert(name.to_string(), value.to_string());
        self
    }

    pub fn flag(self, name: &str, on: bool) -> ShaderSpec {
        self.define(name, if on { "1" } else { "0" })
    }

    /// Marks a variant that uses subgroup operations: naga validates it with them, and on wasm
    /// it gets the `enable subgroups` directive browsers require, which wgpu's own WGSL front
    /// end (naga 30) does not accept yet (see `lib/subgroups.wgsl`).
    pub fn subgroups(self, on: bool) -> ShaderSpec {
        self.flag("USES_SUBGROUPS", on).flag("ENABLE_SUBGROUPS", on && cfg!(target_arch = "wasm32"))
    }

    /// A stable text key for caches and messages.
    pub fn key(&self) -> String {
        let defs: Vec<String> = self.defines.iter().map(|(k, v)| format!("{k}={v}")).collect();
        format!("{}:{}[{}]", self.file, self.entry, defs.join(","))
    }

    /// The assembled WGSL source.
    pub fn source(&self) -> Result<String> {
        let mut body = String::new();
        let mut included = Vec::new();
        expand(self.file, &self.defines, &mut included, &mut body)?;
        // WGSL wants `enable` directives before every declaration, wherever a helper asked
        let (enables, rest): (Vec<&str>, Vec<&str>) = body.lines().partition(|l| l.trim_start().starts_with("enable "));
        let mut out = String::with_capacity(body.len());
        for line in enables.iter().chain(&rest) {
            out.push_str(line);
            out.push('\n');
        }
        Ok(out)
    }

    /// Whether the variant uses subgroup operations (and so needs the adapter's SUBGROUP).
    pub fn uses_subgroups(&self) -> bool {
        flag_is_set(&self.defines, "USES_SUBGROUPS")
    }
}

fn substitute(line: &str, defines: &BTreeMap<String, String>, file: &str) -> Result<String> {
    let mut out = String::with_capacity(line.len());
    let mut rest = line;
    while let Some(start) = rest.find("{{") {
        let end = rest[start..].find("}}").ok_or_else(|| anyhow!("{file}: unclosed {{{{ in: {line}"))?;
        let name = &rest[start + 2..start + end];
        let value = defines.get(name).ok_or_else(|| anyhow!("{file}: define {name} is not set"))?;
        out.push_str(&rest[..start]);
        out.push_str(value);
        rest = &rest[start + end + 2..];
    }
    out.push_str(rest);
    Ok(out)
}

fn flag_is_set(defines: &BTreeMap<String, String>, name: &str) -> bool {
    matches!(defines.get(name).map(String::as_str), Some(v) if v != "0" && v != "false" && !v.is_empty())
}

fn expand(file: &str, defines: &BTreeMap<String, String>, included: &mut Vec<String>, out: &mut String) -> Result<()> {
    let src = shader_file(file)?;
    // one entry per open #if: whether its current branch is kept
    let mut conditions: Vec<bool> = Vec::new();
    let active = |c: &Vec<bool>| c.iter().all(|on| *on);
    for (lineno, raw) in src.lines().enumerate() {
        let trimmed = raw.trim();
        let where_ = || format!("{file}:{}", lineno + 1);
        if let Some(cond) = trimmed.strip_prefix("#if ") {
            let cond = cond.trim();
            let (negated, name) = match cond.strip_prefix('!') {
                Some(name) => (true, name.trim()),
                None => (false, cond),
            };
            if !defines.contains_key(name) {
                bail!("{}: #if {name}: the variant does not define {name} (set it to 0 or 1)", where_());
            }
            conditions.push(flag_is_set(defines, name) != negated);
            continue;
        }
        if trimmed == "#else" {
            let top = conditions.last_mut().ok_or_else(|| anyhow!("{}: #else without #if", where_()))?;
            *top = !*top;
            continue;
        }
        if trimmed == "#endif" {
            conditions.pop().ok_or_else(|| anyhow!("{}: #endif without #if", where_()))?;
            continue;
        }
        if !active(&conditions) {
            continue;
        }
        if let Some(path) = trimmed.strip_prefix("#include ") {
            include_once(path.trim().trim_matches('"'), defines, included, out)?;
            continue;
        }
        let line = substitute(raw, defines, file)?;
        if let Some(args) = line.trim().strip_prefix("#tensor4 ") {
            let parts: Vec<&str> = args.split_whitespace().collect();
            let [name, binding, store] = parts[..] else {
                bail!("{}: expected #tensor4 NAME BINDING STORE", where_());
            };
            quad_view_decl(name, binding, store, included, defines, out).map_err(|e| anyhow!("{}: {e}", where_()))?;
            continue;
        }
        if let Some(args) = line.trim().strip_prefix("#tensor ") {
            let parts: Vec<&str> = args.split_whitespace().collect();
            let (name, binding, access, store, first) = match parts[..] {
                [name, binding, access, store] => (name, binding, access, store, None),
                [name, binding, access, store, from] if from.starts_with("from=") => (name, binding, access, store, Some(&from[5..])),
                _ => bail!("{}: expected #tensor NAME BINDING ACCESS STORE [from=FIRST]", where_()),
            };
            let decl = TensorDecl { name, binding, access, store, first };
            tensor_decl(&decl, included, defines, out).map_err(|e| anyhow!("{}: {e}", where_()))?;
            continue;
        }
        if trimmed.starts_with('#') {
            bail!("{}: unknown directive {trimmed}", where_());
        }
        out.push_str(&line);
        out.push('\n');
    }
    if !conditions.is_empty() {
        bail!("{file}: #if without #endif");
    }
    Ok(())
}

/// Expands a helper file unless this module already has it.
fn include_once(path: &str, defines: &BTreeMap<String, String>, included: &mut Vec<String>, out: &mut String) -> Result<()> {
    if !included.iter().any(|p| p == path) {
        included.push(path.to_string());
        expand(path, defines, included, out)?;
    }
    Ok(())
}

fn quad_view_decl(
    name: &str,
    binding: &str,
    store: &str,
    included: &mut Vec<String>,
    defines: &BTreeMap<String, String>,
    out: &mut String,
) -> Result<()> {
    let template = match Store::from_wgsl_name(store) {
        Some(Store::F32) => "lib/tensor4_f32.wgsl",
        Some(Store::Bf16 | Store::Bf16Sr) => "lib/tensor4_bf16.wgsl",
        Some(Store::F16) => "lib/tensor4_f16.wgsl",
        None => bail!("unknown storage type {store}"),
    };
    if store != "f32" {
        include_once("lib/round.wgsl", defines, included, out)?;
    }
    let own = BTreeMap::from([("TENSOR".to_string(), name.to_string()), ("BINDING".to_string(), binding.to_string())]);
    expand(template, &own, included, out)
}

/// One `#tensor` line: `first`, when given, is the WGSL expression of the element the
/// binding starts at (a window of a larger buffer); the accessors then take the tensor's own
/// element index, which also keys the SR bits.
struct TensorDecl<'a> {
    name: &'a str,
    binding: &'a str,
    access: &'a str,
    store: &'a str,
    first: Option<&'a str>,
}

fn tensor_decl(decl: &TensorDecl, included: &mut Vec<String>, defines: &BTreeMap<String, String>, out: &mut String) -> Result<()> {
    let TensorDecl { name, binding, access, store, first } = *decl;
    let (template, round) = match Store::from_wgsl_name(store) {
        Some(Store::F32) => ("lib/tensor_f32.wgsl", ""),
        Some(Store::Bf16) => ("lib/tensor_bf16.wgsl", "bf16_bits_rtn"),
        Some(Store::Bf16Sr) => ("lib/tensor_bf16.wgsl", "bf16_bits_sr"),
        Some(Store::F16) => ("lib/tensor_f16.wgsl", "f16_bits_rtn"),
        None => bail!("unknown storage type {store}"),
    };
    if access != "read" && access != "read_write" {
        bail!("access must be read or read_write, not {access}");
    }
    if store != "f32" {
        include_once("lib/round.wgsl", defines, included, out)?;
    }
    let own = BTreeMap::from([
        ("TENSOR".to_string(), name.to_string()),
        ("BINDING".to_string(), binding.to_string()),
        ("ACCESS".to_string(), access.to_string()),
        ("ROUND".to_string(), round.to_string()),
        ("WRITABLE".to_string(), ((access == "read_write") as u8).to_string()),
        ("AT".to_string(), first.map_or("i".to_string(), |f| format!("(i - {f})"))),
    ]);
    expand(template, &own, included, out)
}
