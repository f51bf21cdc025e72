//! Every shader variant assembles and passes naga validation with no optional capabilities
//! (as in a browser without shader-f16). Needs no GPU.

use srgpt::gpu::shader::{ShaderSpec, SHADER_FILES};
use srgpt::kernels::{all_variants, uniform_mirrors};

#[test]
fn every_shader_variant_validates_with_naga() {
    let variants = all_variants();
    assert!(variants.len() > 100, "expected the full variant list, got {}", variants.len());
    let failures: Vec<String> = variants.iter().filter_map(|v| v.validate().err()).map(|e| format!("{e:#}")).collect();
    assert!(failures.is_empty(), "{} of {} variants fail:\n{}", failures.len(), variants.len(), failures.join("\n\n"));
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
