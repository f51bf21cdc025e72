//! Every shader variant assembles and passes naga validation with no optional capabilities
//! (as in a browser without shader-f16). Needs no GPU.

use anyhow::{anyhow, bail, Result};
use srgpt::gpu::shader::{ShaderSpec, SHADER_FILES};
use srgpt::kernels::{all_variants, uniform_mirrors};

/// The variant parsed and validated by naga as wgpu does before translating it for the
/// backend, with only the capabilities core WebGPU guarantees (as in a browser without
/// `shader-f16`), plus subgroup operations in compute for the variants that use them.
fn validated(v: &ShaderSpec) -> Result<(naga::Module, naga::valid::ModuleInfo)> {
    let src = v.source()?;
    let module = naga::front::wgsl::parse_str(&src).map_err(|e| anyhow!("{}: {}", v.key(), e.emit_to_string(&src)))?;
    let mut caps = naga::valid::Capabilities::SHADER_FLOAT16_IN_FLOAT32;
    if v.uses_subgroups() {
        caps |= naga::valid::Capabilities::SUBGROUP;
    }
    let info = naga::valid::Validator::new(naga::valid::ValidationFlags::all(), caps)
        .subgroup_stages(naga::valid::ShaderStages::COMPUTE)
        .subgroup_operations(naga::valid::SubgroupOperationSet::all())
        .validate(&module)
        .map_err(|e| anyhow!("{}: {}", v.key(), e.emit_to_string(&src)))?;
    if !module.entry_points.iter().any(|ep| ep.name == v.entry) {
        bail!("{}: no entry point {}", v.key(), v.entry);
    }
    Ok((module, info))
}

#[test]
fn every_shader_variant_validates_with_naga() {
    let variants = all_variants();
    assert!(variants.len() > 100, "expected the full variant list, got {}", variants.len());
    let failures: Vec<String> = variants.iter().filter_map(|v| validated(v).err()).map(|e| format!("{e:#}")).collect();
    assert!(failures.is_empty(), "{} of {} variants fail:\n{}", failures.len(), variants.len(), failures.join("\n\n"));
}

/// Every variant through the three translators wgpu hands shaders to: SPIR-V (Vulkan; 1.3
/// where subgroups are used, as wgpu asks for then, else 1.0), MSL 2.4 (Metal; its subgroup
/// operations are SIMD-group functions) and HLSL (DX12; shader model 6.0 where subgroups are
/// used — wgpu offers SUBGROUP on DX12 only with SM 6.0 — else 5.1). Nothing is excluded: a
/// variant a backend cannot express fails here.
#[test]
fn every_shader_variant_translates_for_vulkan_metal_and_dx12() {
    use naga::back::{hlsl, msl, spv};
    let variants = all_variants();
    let mut failures = Vec::new();
    let mut translated = 0;
    for v in &variants {
        let (module, info) = match validated(v) {
            Ok(m) => m,
            Err(e) => {
                failures.push(format!("{e:#}"));
                continue;
            }
        };
        let key = v.key();
        let subgroups = v.uses_subgroups();
        let spv_options = spv::Options { lang_version: if subgroups { (1, 3) } else { (1, 0) }, ..Default::default() };
        let spv_pipeline = spv::PipelineOptions { shader_stage: naga::ShaderStage::Compute, entry_point: v.entry.to_string() };
        match spv::write_vec(&module, &info, &spv_options, Some(&spv_pipeline)) {
            Ok(words) if !words.is_empty() => translated += 1,
            Ok(_) => failures.push(format!("{key}: SPIR-V: empty")),
            Err(e) => failures.push(format!("{key}: SPIR-V: {e}")),
        }
        let msl_options = msl::Options { lang_version: (2, 4), ..Default::default() };
        let msl_pipeline =
            msl::PipelineOptions { entry_point: Some((naga::ShaderStage::Compute, v.entry.to_string())), ..Default::default() };
        match msl::write_string(&module, &info, &msl_options, &msl_pipeline) {
            Ok((text, _)) if text.contains("kernel void") => translated += 1,
            Ok(_) => failures.push(format!("{key}: MSL: no kernel function")),
            Err(e) => failures.push(format!("{key}: MSL: {e}")),
        }
        let hlsl_options =
            hlsl::Options { shader_model: if subgroups { hlsl::ShaderModel::V6_0 } else { hlsl::ShaderModel::V5_1 }, ..Default::default() };
        let hlsl_pipeline = hlsl::PipelineOptions { entry_point: Some((naga::ShaderStage::Compute, v.entry.to_string())) };
        let mut text = String::new();
        match hlsl::Writer::new(&mut text, &hlsl_options, &hlsl_pipeline).write(&module, &info, None) {
            Ok(_) if text.contains("[numthreads(") => translated += 1,
            Ok(_) => failures.push(format!("{key}: HLSL: no compute entry point")),
            Err(e) => failures.push(format!("{key}: HLSL: {e}")),
        }
    }
    eprintln!("{} variants x 3 backends: {translated} translations (SPIR-V, MSL, HLSL)", variants.len());
    assert!(failures.is_empty(), "{} translations fail:\n{}", failures.len(), failures.join("\n\n"));
    assert_eq!(translated, 3 * variants.len());
}

#[test]
fn every_kernel_file_is_covered_by_a_variant() {
    let variants = all_variants();
    for (path, _) in SHADER_FILES.iter().filter(|(p, _)| !p.starts_with("lib/")) {
        assert!(variants.iter().any(|v| v.file == *path), "no variant of {path}");
    }
}

#[test]
fn shader_files_match_the_shaders_folder() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("shaders");
    let mut on_disk = Vec::new();
    for sub in ["", "lib/"] {
        for entry in std::fs::read_dir(dir.join(sub)).unwrap() {
            let name = entry.unwrap().file_name().into_string().unwrap();
            if name.ends_with(".wgsl") {
                on_disk.push(format!("{sub}{name}"));
            }
        }
    }
    on_disk.sort();
    let mut embedded: Vec<String> = SHADER_FILES.iter().map(|(p, _)| p.to_string()).collect();
    embedded.sort();
    assert_eq!(on_disk, embedded, "src/gpu/shader.rs SHADER_FILES must list every file under shaders/");
}

#[test]
fn helpers_are_included_once_and_defines_select_code() {
    let spec = ShaderSpec::new("convert.wgsl", "convert").define("SRC", "bf16").define("DST", "bf16_sr").flag("PAIR_DST", true);
    let src = spec.source().unwrap();
    assert_eq!(src.matches("fn pcg3d").count(), 1);
    assert!(src.contains("bf16_bits_sr(value.x"));
    assert!(!src.contains("#if"));
    let missing = ShaderSpec::new("convert.wgsl", "convert").define("SRC", "f32");
    assert!(missing.source().unwrap_err().to_string().contains("DST"));
}

/// A misspelt or forgotten define cannot drop code unnoticed: `#if NAME` of a name the
/// variant does not define is an error naming it, as an undefined `{{NAME}}` is.
#[test]
fn an_if_of_an_undefined_name_is_an_error() {
    let spec = ShaderSpec::new("convert.wgsl", "convert").define("SRC", "bf16").define("DST", "f32");
    let err = spec.source().unwrap_err().to_string();
    assert!(err.contains("#if PAIR_DST") && err.contains("does not define PAIR_DST"), "{err}");
    assert!(spec.flag("PAIR_DST", false).source().is_ok());
}

/// Every kernel's uniform block is a Rust struct mirrored field for field in its WGSL
/// `struct Params`: the same names, offsets and scalar types, and the same size. A field
/// swapped, added or dropped on one side fails here.
#[test]
fn every_uniform_block_matches_its_rust_struct() {
    let mirrors = uniform_mirrors();
    for (path, _) in SHADER_FILES.iter().filter(|(p, _)| !p.starts_with("lib/")) {
        assert!(mirrors.iter().any(|(spec, ..)| spec.file == *path), "{path} has no Rust mirror of its uniform block");
    }
    for (spec, name, size, fields) in mirrors {
        let src = spec.source().unwrap();
        let module = naga::front::wgsl::parse_str(&src).unwrap();
        let uniforms: Vec<_> = module.global_variables.iter().filter(|(_, g)| g.space == naga::AddressSpace::Uniform).collect();
        assert_eq!(uniforms.len(), 1, "{}: one uniform block", spec.file);
        let naga::TypeInner::Struct { members, span } = &module.types[uniforms[0].1.ty].inner else {
            panic!("{}: the uniform block is not a struct", spec.file);
        };
        let scalar = |ty: naga::Handle<naga::Type>| match module.types[ty].inner {
            naga::TypeInner::Scalar(naga::Scalar { kind: naga::ScalarKind::Uint, width: 4 }) => "u32",
            naga::TypeInner::Scalar(naga::Scalar { kind: naga::ScalarKind::Float, width: 4 }) => "f32",
            _ => "another type",
        };
        let wgsl: Vec<(String, usize, &str)> =
            members.iter().map(|m| (m.name.clone().unwrap_or_default(), m.offset as usize, scalar(m.ty))).collect();
        let rust: Vec<(String, usize, &str)> = fields.iter().map(|(n, o, t)| (n.to_string(), *o, *t)).collect();
        assert_eq!(rust, wgsl, "{name} against the Params of {}", spec.file);
        assert_eq!(size, *span as usize, "{name}: size against the Params of {}", spec.file);
    }
}
